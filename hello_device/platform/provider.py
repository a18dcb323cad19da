"""The agent configuration the daemon uses, and how it is kept up to date.

Boot (fetch, else the cache, else offline), background retries with one attempt per
backoff step, refresh at conversation boundaries and on SIGHUP, and a slow pace when the
platform refused the device (a human must act).
"""

from __future__ import annotations

import asyncio
import enum
import logging
import math
import random
import time
from collections.abc import Callable
from typing import Any

from hello_device.aio import Clock, Sleep
from hello_device.core.agent_profile import AgentProfile, map_agent_config
from hello_device.core.backoff import Backoff
from hello_device.errors import (
    PlatformError,
    PlatformUnavailable,
    describe_os_error,
    needs_human,
)
from hello_device.platform.cache import AgentConfigCache
from hello_device.platform.client import PlatformClient
from hello_device.platform.http import Transport
from hello_device.settings import Settings
from hello_device.timefmt import format_age, format_time

log = logging.getLogger(__name__)


class ProviderStatus(enum.StrEnum):
    """Where the agent configuration in use stands."""

    ONLINE = "online"
    """The last attempt reached the platform."""
    CACHED = "cached"
    """It did not; running on an older copy."""
    OFFLINE = "offline"
    """It did not, and there is no copy at all."""
    ERROR = "error"
    """The platform refused us (key, agent id): a human must act."""


NEEDS_HUMAN_RETRY_S = 60.0
"""After the platform refused the key or the agent id, the next attempt comes no sooner
than this (or at once on SIGHUP / a changed configuration)."""
REFRESH_SPACING_S = 5.0
"""Asked-for refreshes (SIGHUP) are at least this far apart: a storm coalesces."""


class AgentConfigProvider:
    """The agent configuration the app uses, and how it is kept up to date.

    The app calls :meth:`boot` once, runs :meth:`run_background` as a task for the
    daemon's life, and at every conversation boundary calls :meth:`take_update` (then
    :meth:`refresh_if_stale` at the start of a conversation). SIGHUP calls
    :meth:`request_refresh`. All methods must be called from the event loop's thread.

    ``status`` is a :class:`ProviderStatus`. ``on_change`` (optional) is called after every change of status or of the pending
    update, e.g. to update LEDs and the systemd STATUS line.
    """

    def __init__(
        self,
        settings: Settings,
        client: PlatformClient,
        cache: AgentConfigCache,
        *,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        rng: random.Random | None = None,
        on_change: Callable[[AgentConfigProvider], None] | None = None,
    ) -> None:
        self._settings = settings
        self._monotonic = monotonic
        self._client = client
        self._cache = cache
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self.on_change = on_change
        self._agent_id = settings.platform.agent_id
        self._current: AgentProfile | None = None
        self._current_raw: dict[str, Any] | None = None
        self._source = "none"
        self._fetched_at: float | None = None
        self._pending: tuple[AgentProfile, dict[str, Any], float] | None = None
        self._last_success: float | None = None
        self._status = ProviderStatus.OFFLINE
        self._status_message = "not started"
        self._refresh_requested = False
        self._last_attempt_at = -math.inf
        self.failure: PlatformError | None = None
        """The last attempt's failure (None after a success)."""
        self._last_logged: str | None = None
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: Transport | None = None, **kwargs: Any
    ) -> AgentConfigProvider:
        """A provider with the real client and the cache under ``settings.state.dir``."""
        client = PlatformClient(settings.platform, transport)
        return cls(settings, client, AgentConfigCache(settings.state.dir), **kwargs)

    # ------------------------------------------------------------------ properties

    @property
    def current(self) -> AgentProfile | None:
        """The profile in use (None: no configuration yet; use defaults)."""
        return self._current

    @property
    def current_raw(self) -> dict[str, Any] | None:
        """The platform's JSON behind :attr:`current`."""
        return self._current_raw

    @property
    def source(self) -> str:
        """Where :attr:`current` came from: ``platform``, ``cache`` or ``none``."""
        return self._source

    @property
    def status(self) -> ProviderStatus:
        return self._status

    @property
    def status_message(self) -> str:
        return self._status_message

    @property
    def fetched_at(self) -> float | None:
        """When :attr:`current` was fetched (epoch seconds)."""
        return self._fetched_at

    @property
    def pending(self) -> AgentProfile | None:
        """A newer profile waiting for the next conversation boundary."""
        return self._pending[0] if self._pending else None

    # ------------------------------------------------------------------ boot

    async def boot(self, timeout: float | None = None) -> AgentProfile | None:  # noqa: ASYNC109
        """One fetch; on failure the cache; neither: offline and None. Never raises for
        network or HTTP problems (a refused key or unknown agent sets status ``error``)."""
        try:
            raw = await self._fetch_once(timeout)
        except PlatformError as exc:
            failure = self.failure = exc
        else:
            self.failure = None
            now = self._clock()
            self._adopt(raw, now, "platform")
            self._save(raw, now)
            self._last_success = now
            self._set_status(
                ProviderStatus.ONLINE, f"agent configuration fetched from {self._client.host}"
            )
            log.info(
                "agent configuration fetched from %s (agent %s)",
                self._client.host,
                self._current.name if self._current and self._current.name else self._agent_id,
            )
            return self._current

        cached = self._cache.load(self._agent_id)
        if cached is not None:
            self._adopt(cached.raw, cached.fetched_at, "cache")
            self._last_success = cached.fetched_at
        self._last_logged = str(failure)
        if not needs_human(failure):
            unavailable = isinstance(failure, PlatformUnavailable)
            what = f"platform unreachable ({failure})" if unavailable else str(failure)
            if cached is not None:
                message = (
                    f"{what}; using the agent configuration cached "
                    f"at {format_time(cached.fetched_at)} (age {format_age(cached.age_s)})"
                )
                self._set_status(ProviderStatus.CACHED, message)
            else:
                message = (
                    f"{what}; no cached agent configuration, so running offline and "
                    "retrying in the background"
                )
                self._set_status(ProviderStatus.OFFLINE, message)
            log.log(logging.WARNING if unavailable else logging.ERROR, "%s", message)
        else:
            if cached is not None:
                message = (
                    f"{failure}; using the agent configuration cached at "
                    f"{format_time(cached.fetched_at)} (age {format_age(cached.age_s)})"
                )
            else:
                message = f"{failure}; no cached agent configuration"
            self._set_status(ProviderStatus.ERROR, message)
            log.error("%s", message)
        return self._current

    # ------------------------------------------------------------------ background

    async def run_background(self) -> None:
        """Retry until online, then wait for :meth:`request_refresh`; runs until cancelled.

        One attempt per step, and nothing else of the device's fetches the configuration
        meanwhile (:meth:`refresh_if_stale` leaves a failing platform to this loop):

        * platform unreachable: 1 s doubling to ``platform.reconnect_max_backoff_s``, each
          wait jittered to between half and all of the step;
        * platform refused us (key, agent id: a human must act): one attempt every
          :data:`NEEDS_HUMAN_RETRY_S` or more;
        * a refresh was asked for (SIGHUP, a changed configuration): at once, but never
          sooner than :data:`REFRESH_SPACING_S` after the previous attempt, so a storm of
          requests coalesces into one in flight and one pending;
        * never before a ``Retry-After`` the platform asked for has passed.
        """
        cap = max(1.0, self._settings.platform.reconnect_max_backoff_s)
        backoff, attempt = Backoff(cap), 0
        while True:
            try:
                self._wake.clear()
                if self._status is ProviderStatus.ONLINE and not self._refresh_requested:
                    attempt = 0
                    await self._wake.wait()
                    continue
                if self._refresh_requested:
                    delay = self._last_attempt_at + REFRESH_SPACING_S - self._monotonic()
                elif self._status is ProviderStatus.ERROR:
                    delay = self._rng.uniform(NEEDS_HUMAN_RETRY_S, 1.25 * NEEDS_HUMAN_RETRY_S)
                else:
                    attempt += 1
                    delay = backoff.delay(attempt, self._rng)
                delay = max(delay, self._client.retry_after_remaining)
                if delay > 0 and await self._sleep_unless_woken(delay):
                    continue  # a refresh was asked for, or the status changed: recompute
                await self._attempt(None, apply_now=False)
            except asyncio.CancelledError:
                raise
            except Exception:  # a background loop must not die
                log.exception("agent configuration refresh failed unexpectedly")
                await self._sleep(cap)

    async def _sleep_unless_woken(self, delay: float) -> bool:
        """Sleep ``delay`` seconds; True if :attr:`_wake` cut it short."""
        woken = asyncio.ensure_future(self._wake.wait())
        slept = asyncio.ensure_future(self._sleep(delay))
        try:
            await asyncio.wait({woken, slept}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            woken.cancel()
            slept.cancel()
        return self._wake.is_set()

    def request_refresh(self) -> None:
        """Mark the configuration stale (SIGHUP, a changed configuration): fetched in the
        background (at once, or as soon as :data:`REFRESH_SPACING_S` allows; requests
        meanwhile coalesce into that one), applied at the next conversation boundary."""
        self._refresh_requested = True
        self._wake.set()

    def use(self, settings: Settings, client: PlatformClient) -> None:
        """A reload changed ``[platform]`` (a new key, base URL or agent): use it from
        the next attempt on, which :meth:`request_refresh` then asks for at once. A new
        agent id starts from that agent's cached copy, if any."""
        self._settings = settings
        self._client = client
        agent_id = settings.platform.agent_id
        if agent_id != self._agent_id:
            self._agent_id = agent_id
            self._current = self._current_raw = self._fetched_at = self._last_success = None
            self._pending = None
            self._source = "none"
            cached = self._cache.load(agent_id)
            if cached is not None:  # applied at the next boundary, like a newer copy
                self._pending = (map_agent_config(cached.raw), cached.raw, cached.fetched_at)
                self._last_success = cached.fetched_at
        self._last_attempt_at = -math.inf  # a human changed something: no spacing
        self.request_refresh()

    def report_failure(self, exc: PlatformError) -> None:
        """A failure another call to the platform met (the signed URL, say): a refused key
        or unknown agent puts the provider in ``error`` (slow retries until a human acts),
        as if its own fetch had failed."""
        self._on_failure(exc)

    @property
    def needs_human(self) -> bool:
        """The platform refused us (key, agent id, a wrong ``api_base_url``): retrying
        will not help until someone fixes the configuration."""
        return self._status is ProviderStatus.ERROR

    def take_update(self) -> AgentProfile | None:
        """At a conversation boundary: make a pending newer profile current and return it."""
        if self._pending is None:
            return None
        profile, raw, fetched_at = self._pending
        self._pending = None
        self._adopt(raw, fetched_at, "platform", profile)
        log.info("applying the newer agent configuration fetched at %s", format_time(fetched_at))
        self._changed()
        return profile

    def is_stale(self) -> bool:
        """True when a refresh was requested or the freshest copy is older than
        ``platform.config_max_age_s`` (or its age is unknown)."""
        if self._refresh_requested or self._last_success is None:
            return True
        age = self._clock() - self._last_success
        return age < 0 or age >= self._settings.platform.config_max_age_s

    async def refresh_if_stale(self, timeout: float = 3.0) -> bool:  # noqa: ASYNC109
        """At the start of a conversation: fetch once if the copy is old; True if a new
        copy is now current. Only while the platform answers: when it does not, the
        background loop owns the retries (a conversation must not add REST calls). On
        failure the current copy stays (and background retries resume)."""
        if self._status is not ProviderStatus.ONLINE or not self.is_stale():
            return False
        if self._lock.locked():
            log.debug("refresh skipped: a background fetch is under way")
            return False
        return await self._attempt(timeout, apply_now=True)

    # ------------------------------------------------------------------ internals

    async def _fetch_once(self, limit: float | None) -> dict[str, Any]:
        """One attempt; every failure becomes a PlatformError (the daemon must not die)."""
        coro = self._client.fetch_agent_config(attempts=1)
        try:
            if limit is None:
                return await coro
            return await asyncio.wait_for(coro, limit)
        except TimeoutError:
            raise PlatformUnavailable(
                f"no answer from {self._client.host} within {limit:g} s"
            ) from None
        except PlatformError:
            raise
        except Exception as exc:
            # A bug or an unexpected transport failure: report it with its traceback
            # (the log handlers scrub the key), then treat it like any refusal.
            log.error("unexpected failure while fetching the agent configuration", exc_info=exc)
            raise PlatformError(
                f"unexpected {type(exc).__name__} while fetching the agent configuration "
                "(see the log)"
            ) from None

    async def _attempt(self, limit: float | None, apply_now: bool) -> bool:
        async with self._lock:
            if (
                not apply_now
                and self._status is ProviderStatus.ONLINE
                and not self._refresh_requested
            ):
                return False  # a conversation-start refresh got there first
            # A request made while this one is in flight asks for one more afterwards.
            self._refresh_requested = False
            self._last_attempt_at = self._monotonic()
            try:
                raw = await self._fetch_once(limit)
            except PlatformError as exc:
                self._on_failure(exc)
                return False
            self._on_success(raw, apply_now)
            return apply_now

    def _on_success(self, raw: dict[str, Any], apply_now: bool) -> None:
        self.failure = None
        now = self._clock()
        self._save(raw, now)
        self._last_success = now
        recovered = self._status is not ProviderStatus.ONLINE
        if apply_now or raw == self._current_raw:
            self._pending = None
            self._adopt(raw, now, "platform")
        else:
            self._pending = (map_agent_config(raw), raw, now)
            log.info(
                "a newer agent configuration was fetched; it applies at the next "
                "conversation boundary"
            )
        if recovered:
            log.info("platform reachable again (%s)", self._client.host)
        self._last_logged = None
        self._set_status(
            ProviderStatus.ONLINE, f"agent configuration fetched from {self._client.host}"
        )

    def _on_failure(self, exc: PlatformError) -> None:
        self.failure = exc
        message = str(exc)
        unavailable = isinstance(exc, PlatformUnavailable)
        if message != self._last_logged:
            log.log(logging.WARNING if unavailable else logging.ERROR, "%s", message)
            self._last_logged = message
        else:
            log.debug("%s (again)", message)
        if not needs_human(exc):
            what = f"platform unreachable ({message})" if unavailable else message
            if self._current is not None or self._pending is not None:
                when = format_time(self._fetched_at) if self._fetched_at is not None else "?"
                self._set_status(ProviderStatus.CACHED, f"{what}; using the copy from {when}")
            else:
                self._set_status(ProviderStatus.OFFLINE, f"{what}; no agent configuration yet")
        else:
            self._set_status(ProviderStatus.ERROR, message)
        self._wake.set()

    def _adopt(
        self,
        raw: dict[str, Any],
        fetched_at: float,
        source: str,
        profile: AgentProfile | None = None,
    ) -> None:
        self._current = profile if profile is not None else map_agent_config(raw)
        self._current_raw = raw
        self._fetched_at = fetched_at
        self._source = source

    def _save(self, raw: dict[str, Any], fetched_at: float) -> None:
        try:
            self._cache.save(self._agent_id, raw, fetched_at)
        except (OSError, ValueError, TypeError) as exc:
            log.warning(
                "cannot write the agent configuration cache in %s: %s (continuing without)",
                self._cache.dir,
                describe_os_error(exc) if isinstance(exc, OSError) else exc,
            )

    def _set_status(self, status: ProviderStatus, message: str) -> None:
        self._status = status
        self._status_message = message
        self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            try:
                self.on_change(self)
            except Exception:
                log.exception("on_change callback failed")
