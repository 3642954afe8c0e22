{
  # Orphan reaper for the sidecar (PID 1 in a container). Plain C against N-API only,
  # so it needs no npm dependency and survives Node upgrades without a rebuild.
  "targets": [
    {
      "target_name": "reaper",
      "sources": ["reaper.c"],
      "defines": ["NAPI_VERSION=8"],
      "cflags": ["-Wall", "-Wextra", "-O2"]
    }
  ]
}
