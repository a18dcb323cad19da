"""The platform's management REST API: HTTP transport, proxies, client, cache, provider."""
