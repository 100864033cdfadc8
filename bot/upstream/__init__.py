"""Calling upstream APIs: the HTTP client and its error classes, circuit breakers and quotas
shared through Redis. Used by providers, which run in workers."""
