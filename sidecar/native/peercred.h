#ifndef PGCHARM_PEERCRED_H
#define PGCHARM_PEERCRED_H
#include <node_api.h>

napi_value peer_cred(napi_env env, napi_callback_info info);

#endif
