/*
 * Peer credentials of a unix socket connection, for the API's access control: Pebble decides
 * who a caller on its socket is from SO_PEERCRED (the UID the connecting process had), and
 * Node does not expose that option. The JS side passes the fd of an accepted connection.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <node_api.h>

#include "peercred.h"

/* peerCred(fd): {pid, uid, gid}. Throws when fd is not a connected unix socket. */
napi_value peer_cred(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_value out, v;
  int32_t fd;
  struct ucred cred;
  socklen_t len = sizeof cred;
  char msg[256];

  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok) return NULL;
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) {
    napi_throw_type_error(env, NULL, "peerCred: fd must be a non-negative integer");
    return NULL;
  }
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || len != sizeof cred) {
    snprintf(msg, sizeof msg, "getsockopt(SO_PEERCRED): %s", strerror(errno));
    napi_throw_error(env, NULL, msg);
    return NULL;
  }
  napi_create_object(env, &out);
  napi_create_int32(env, (int32_t)cred.pid, &v);
  napi_set_named_property(env, out, "pid", v);
  napi_create_uint32(env, (uint32_t)cred.uid, &v);
  napi_set_named_property(env, out, "uid", v);
  napi_create_uint32(env, (uint32_t)cred.gid, &v);
  napi_set_named_property(env, out, "gid", v);
  return out;
}
