/*
 * features.h - the plan features an endpoint can require (the seed's
 * TenantSecure operations), as bits.
 *
 * A tenant's enabled_features JSON object ({"lead:read": true, ...}) is
 * turned into a bitmask when its key is resolved; a route names the one
 * feature it needs and the server answers 403 feature_disabled, before the
 * handler runs, when the bit is not set.  Features not listed here are kept
 * in the database but mean nothing to the server yet.
 */
#ifndef TK_AUTH_FEATURES_H
#define TK_AUTH_FEATURES_H

#include <stddef.h>

typedef enum tk_feature {
	TK_FEATURE_NONE = 0,
	TK_FEATURE_LEAD_READ = 1u << 0,
	TK_FEATURE_LEAD_CREATE = 1u << 1,
	TK_FEATURE_LEAD_UPDATE = 1u << 2,
	TK_FEATURE_LEAD_DELETE = 1u << 3,
	TK_FEATURE_EXPORT_CSV = 1u << 4,
	TK_FEATURE_API_ACCESS = 1u << 5,
} tk_feature;

/* The feature's name ("lead:read"), or "" for TK_FEATURE_NONE. */
const char *tk_feature_name(tk_feature feature);
/* Parses an enabled_features JSON object; features set to true become bits.
 * Malformed JSON yields no features (deny). */
unsigned tk_features_from_json(const char *json, size_t len);

#endif
