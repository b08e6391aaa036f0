/*
 * smc_result: the objects libsmcache hands out (smc_secret,
 * smc_description, smc_stat_list), built by copying out of a decoded reply so
 * the receive buffer can be wiped right after. Internal to libsmcache.
 */
#ifndef SMC_CLIENT_RESULT_H
#define SMC_CLIENT_RESULT_H

#include "message.h"
#include "smcache.h"

/* Each returns 0 with *out set, or -1 with err set (SMC_ERR_PROTOCOL when
 * the reply lacks what the operation must carry, SMC_ERR_NOMEM). */
int smci_secret_from_reply(const struct proto_reply *reply, smc_secret **out, smc_error *err);
int smci_description_from_reply(const struct proto_reply *reply, smc_description **out,
    smc_error *err);
int smci_stats_from_reply(const struct proto_reply *reply, smc_stat_list **out, smc_error *err);

#endif
