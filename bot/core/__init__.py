"""The platform-neutral core: the request and reply types, every Redis key, the gate, the
cache format, the texts users read, text rules and the shared GCRA limiter. It imports no
platform, no command and no task."""
