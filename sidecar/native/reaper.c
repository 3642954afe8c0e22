/*
 * Reaping of orphaned children for the sidecar.
 *
 * Node only waits for pids it spawned itself (libuv's SIGCHLD handler and node-pty's
 * waiter thread call waitpid() on their own pids), so grandchildren re-parented to the
 * sidecar as PID 1 or as a child subreaper stay zombies forever. The JS side decides
 * which pids are orphans; this file only exposes the two syscalls it needs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <node_api.h>

#include "peercred.h"

static napi_value throw_errno(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "%s: %s", what, strerror(err));
  napi_throw_error(env, NULL, msg);
  return NULL;
}

/* setChildSubreaper(): boolean. Makes orphans of our descendants re-parent to us even
 * when we are not PID 1 (tests, or running under another init). */
static napi_value set_child_subreaper(napi_env env, napi_callback_info info) {
  (void)info;
  napi_value out;
  int ok = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0;
  napi_get_boolean(env, ok, &out);
  return out;
}

/* reap(pid): number | null. waitpid(pid, WNOHANG): the raw wait status when the child was
 * reaped, null when it is still running or is not (or no longer) our child. */
static napi_value reap(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value out;
  int32_t pid;
  int status = 0;
  pid_t r;

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &pid) != napi_ok || pid <= 0) {
    napi_throw_type_error(env, NULL, "reap: pid must be a positive integer");
    return NULL;
  }
  /* A positive pid only: waitpid(-1) or a process group would steal libuv's children. */
  do {
    r = waitpid((pid_t)pid, &status, WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r < 0) {
    if (errno == ECHILD) {
      napi_get_null(env, &out);
      return out;
    }
    return throw_errno(env, "waitpid", errno);
  }
  if (r == 0) {
    napi_get_null(env, &out);
    return out;
  }
  napi_create_int32(env, status, &out);
  return out;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "setChildSubreaper", NAPI_AUTO_LENGTH, set_child_subreaper, NULL, &fn);
  napi_set_named_property(env, exports, "setChildSubreaper", fn);
  napi_create_function(env, "reap", NAPI_AUTO_LENGTH, reap, NULL, &fn);
  napi_set_named_property(env, exports, "reap", fn);
  /* The sidecar's one addon carries its other syscall too (peercred.c): one file to build and ship. */
  napi_create_function(env, "peerCred", NAPI_AUTO_LENGTH, peer_cred, NULL, &fn);
  napi_set_named_property(env, exports, "peerCred", fn);
  return exports;
}
