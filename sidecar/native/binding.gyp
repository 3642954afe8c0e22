{
  # The sidecar's native helpers: the orphan reaper (PID 1 in a container) and the API socket's
  # peer credentials. Plain C against N-API only, so it needs no npm dependency and survives
  # Node upgrades without a rebuild.
  "targets": [
    {
      "target_name": "reaper",
      "sources": ["reaper.c", "peercred.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
