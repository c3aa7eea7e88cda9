/*
 * features.c - feature names and parsing (see features.h).
 */
#include "auth/features.h"

#include <jansson.h>
#include <string.h>

#include "util/status.h"

static const struct {
	tk_feature bit;
	const char *name;
} features[] = {
    {TK_FEATURE_LEAD_READ, "lead:read"},     {TK_FEATURE_LEAD_CREATE, "lead:create"},
    {TK_FEATURE_LEAD_UPDATE, "lead:update"}, {TK_FEATURE_LEAD_DELETE, "lead:delete"},
    {TK_FEATURE_EXPORT_CSV, "export:csv"},   {TK_FEATURE_API_ACCESS, "api:access"},
};

const char *tk_feature_name(tk_feature feature)
{
	for (size_t i = 0; i < TK_ARRAY_LEN(features); i++)
		if (features[i].bit == feature)
			return features[i].name;
	return "";
}

unsigned tk_features_from_json(const char *json, size_t len)
{
	json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, NULL);
	unsigned bits = 0;
	if (json_is_object(root))
		for (size_t i = 0; i < TK_ARRAY_LEN(features); i++)
			if (json_is_true(json_object_get(root, features[i].name)))
				bits |= features[i].bit;
	json_decref(root);
	return bits;
}
