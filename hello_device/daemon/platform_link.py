"""The daemon's link to the platform's management API: the agent configuration at boot
and at conversation boundaries, reloads (coalesced), a refusal shown until a human acts
(and noticed when they fix the files), and the URL of each conversation: a signed one
whenever the agent may need it, never an unsigned fall-back.
"""

from __future__ import annotations

import asyncio
import logging
import os
from dataclasses import replace
from typing import TYPE_CHECKING

from hello_device.aio import until_stopped
from hello_device.conversation.urls import conversation_url
from hello_device.core.text import peer
from hello_device.core.urls import safe_url
from hello_device.errors import (
    ConfigError,
    PlatformError,
)
from hello_device.logs import (
    REDACTOR,
)
from hello_device.settings import (
    Settings,
    load_settings,
)

if TYPE_CHECKING:
    from hello_device.core.agent_profile import AgentProfile
    from hello_device.platform.client import PlatformClient
    from hello_device.platform.provider import AgentConfigProvider

from hello_device.daemon.base import DaemonBase
from hello_device.platform.provider import ProviderStatus

log = logging.getLogger(__name__)

BOOT_FETCH_WITH_CACHE_S = 0.3
"""With a cached agent configuration, how long boot waits for the platform before it
uses the cache (and keeps trying in the background)."""


class PlatformLinkMixin(DaemonBase):
    """Agent configuration, reloads, refusals and conversation URLs."""

    @property
    def provider(self) -> AgentConfigProvider:
        if self._provider is None:
            from hello_device.platform.cache import AgentConfigCache
            from hello_device.platform.provider import AgentConfigProvider

            cache = AgentConfigCache(self.settings.state.dir)
            self._provider = AgentConfigProvider(
                self.base_settings, self.client, cache, on_change=self._on_provider_change
            )
        elif self._provider.on_change is None:
            self._provider.on_change = self._on_provider_change
        return self._provider

    @property
    def client(self) -> PlatformClient:
        if self._client is None:
            from hello_device.platform.client import PlatformClient

            self._client = PlatformClient(self.base_settings.platform)
        return self._client

    def request_reload(self) -> None:
        """Reload the TOML and the agent configuration (SIGHUP).

        A storm of requests coalesces: the file is read once per turn of the event loop
        (between conversations; during one, at its end), and the platform is asked at
        most once in flight and once pending (:meth:`AgentConfigProvider.request_refresh`).
        """
        if self._reload_requested:
            log.debug("reload already pending")
            return
        log.info("reload requested")
        self._reload_requested = True
        if self.session is None and not self._reload_scheduled:
            self._reload_scheduled = True
            asyncio.get_running_loop().call_soon(self._scheduled_reload)

    def _scheduled_reload(self) -> None:
        self._reload_scheduled = False
        if self.session is None:
            self._maybe_reload()

    async def _boot_config(self) -> AgentProfile | None:
        """The platform's copy, or at once the cached one when the platform is slow."""
        from hello_device.platform.cache import AgentConfigCache

        s = self.base_settings
        warm = AgentConfigCache(s.state.dir).load(s.platform.agent_id, quarantine=False)
        # Without a cache, wait longer (a fresh device), but bounded: a silent server
        # must not keep the device from starting; the background task keeps trying.
        limit = BOOT_FETCH_WITH_CACHE_S if warm else s.platform.connect_timeout_s
        profile = await until_stopped(self.provider.boot(timeout=limit), self._stop)
        self._on_provider_change(self.provider)  # the provider logged what went wrong
        return profile

    def _apply_profile(self, profile: AgentProfile | None) -> None:
        from hello_device.core.agent_profile import apply_profile

        self.profile = profile
        self.settings = apply_profile(self.base_settings, profile)
        self._build_turn_parts()

    def _wants_signed_url(self) -> bool:
        """Whether a conversation needs a signed URL: always when configured so; with
        ``auto``, when the agent is private, or when its configuration is not known yet
        and a key is set (a private agent must never be tried without a signature)."""
        p = self.settings.platform
        if p.signed_url != "auto":
            return p.signed_url == "always"
        if self.profile is not None:
            return self.profile.private
        return bool(p.api_key)

    async def _conversation_url(self) -> str:
        """The URL of the next conversation. Raises :class:`PlatformError` when a signed
        URL is needed and cannot be had: then there is no conversation, never a fall
        back to the unsigned URL."""
        if not self._wants_signed_url():
            return conversation_url(self.settings)
        url = await self.client.get_signed_url(attempts=1)
        query = url.partition("?")[2]
        for part in query.split("&"):
            REDACTOR.add_transient(part.partition("=")[2])
        log.debug("signed URL fetched for %s", safe_url(url))
        return url

    def _blocked(self) -> bool:
        """No conversation until a human acts: the platform refused the key or the agent
        id. Only an agent configured as public (``signed_url = "never"``) goes on talking
        without what the platform refused."""
        return self.provider.needs_human and self.settings.platform.signed_url != "never"

    def _on_provider_change(self, provider: AgentConfigProvider) -> None:
        """The platform's verdict changed: a refusal shows as ``error`` until a human
        fixes it; when it clears, a kiosk starts talking again by itself."""
        now = self.clock()
        self.state.set_offline(provider.status is ProviderStatus.OFFLINE, now)
        refused = provider.needs_human
        if refused:
            self._show_error()
        elif self._refused:
            log.info("the platform accepts the device again")
            self._show_error()
            if self.settings.conversation.start == "auto" and self.ready.is_set():
                self._trigger.set()
        self._refused = refused

    def _maybe_reload(self) -> None:
        if not self._reload_requested or self.config_path is None:
            self._reload_requested = False
            return
        self._reload_requested = False
        self.notifier.reloading()
        try:
            new = load_settings(self.config_path, warn=lambda m: log.warning("%s", m))
        except ConfigError as exc:
            if self.metrics is not None:
                self.metrics.refused_configs.inc()
            for line in exc.problems:
                log.error("reload refused, keeping the running configuration: %s", line)
        else:
            kept = ("audio", "gpio", "state", "logging")
            changed = [k for k in kept if getattr(new, k) != getattr(self.settings, k)]
            if changed:
                log.warning("reload: changes to %s take effect after a restart", ", ".join(changed))
                new = replace(new, **{k: getattr(self.settings, k) for k in kept})
            if new.platform.api_key:
                REDACTOR.add(new.platform.api_key.reveal())
            previous = self.base_settings
            self.base_settings = new
            try:
                self._apply_profile(self.profile)  # loads a new wake-word model, say
            except ConfigError as exc:
                log.error("reload refused, keeping the running configuration: %s", exc)
                if self.metrics is not None:
                    self.metrics.refused_configs.inc()
                self.base_settings = previous
                self._apply_profile(self.profile)
            else:
                if new.platform != previous.platform:
                    self._use_platform_settings(new)
                log.info("configuration reloaded from %s", self.config_path)
        self._remember_watched_files()
        self.provider.request_refresh()
        self.notifier.ready(self._status_text())

    def _use_platform_settings(self, new: Settings) -> None:
        """A reload changed ``[platform]`` (a new key, say): talk to the platform with it
        from now on."""
        from hello_device.platform.client import PlatformClient

        self._client = PlatformClient(new.platform)
        self.provider.use(new, self._client)

    def _remember_watched_files(self) -> None:
        """The configuration and key files as last read, to notice a technician's fix."""
        paths = [self.config_path, self.base_settings.platform.api_key_file]
        self._watched = {path: mtime(path) for path in paths if path}

    def _watched_files_changed(self) -> bool:
        return any(mtime(path) != seen for path, seen in self._watched.items())


def refusal_text(failure: PlatformError | None) -> str:
    """The STATUS / LED reason for a refusal: short, and what to do."""
    from hello_device.errors import AgentNotFoundError, AuthError

    if isinstance(failure, AuthError):
        return "API key refused: fix platform.api_key_file, then reload"
    if isinstance(failure, AgentNotFoundError):
        return "agent not found: fix platform.agent_id, then reload"
    return f"platform refused: {peer(str(failure), 120)}" if failure else "platform refused"


def mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return None
