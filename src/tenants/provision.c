/*
 * provision.c - tenant provisioning (see provision.h).
 */
#include "tenants/provision.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "auth/datakey.h"
#include "auth/password.h"
#include "db/tx.h"
#include "outbox/smtp.h"
#include "util/buf.h"
#include "util/validate.h"

static const char provision_sql[] =
    "SELECT tenant_id::text, slug, coalesce(admin_user_id::text, ''), dashboard_url"
    " FROM provision_tenant($15::uuid, $1, $2, $3, $4, $5, $6, $7, $8, $9::bytea, $10, $11,"
    " $12::bytea, $13::int, $14)";

static const char audit_sql[] =
    "INSERT INTO operator_audit (token_id, actor, action, tenant_id, details)"
    " SELECT $1::uuid, $2, 'tenant.create', id, jsonb_build_object('name', name, 'plan',"
    " subscription_plan, 'slug', slug, 'sampleLeads', $4::int) FROM tenants WHERE id = $3::uuid";

static tk_status check_email(const char *value, const char *field, tk_error *err)
{
	if (value && !tk_is_email(value, strlen(value)))
		return tk_error_invalid(err, field, "%s is not a valid e-mail address", field);
	return TK_OK;
}

tk_status provision_check_name(const char *name, tk_error *err)
{
	size_t nlen = name ? strlen(name) : 0;
	if (nlen == 0 || !tk_is_utf8(name, nlen) || tk_utf8_length(name, nlen) > PROVISION_NAME_MAX)
		return tk_error_invalid(err, "name", "name must be 1 to %d characters",
		                        PROVISION_NAME_MAX);
	if (tk_has_control(name, nlen))
		return tk_error_invalid(err, "name",
		                        "name must not contain control characters (line breaks, "
		                        "tabs, ...)");
	return TK_OK;
}

tk_status provision_validate(const provision_request *in, tk_error *err)
{
	if (provision_check_name(in->name, err) != TK_OK)
		return TK_ERR;
	if (check_email(in->billing_email, "billingEmail", err) != TK_OK ||
	    check_email(in->admin_email, "adminEmail", err) != TK_OK)
		return TK_ERR;
	/* The welcome e-mail goes to the admin; the billing address only
	 * travels inside a JSON webhook, where any valid address is fine. */
	if (in->admin_email && !outbox_address_ok(in->admin_email))
		return tk_error_invalid(err, "adminEmail",
		                        "adminEmail must be a plain ASCII address (the welcome "
		                        "e-mail is sent to it)");
	if (in->admin_email) {
		if (in->admin_name == NULL)
			return tk_error_invalid(err, "adminName", "adminName is required");
		if (in->admin_password == NULL)
			return tk_error_invalid(err, "adminPassword", "adminPassword is required");
		if (tk_password_check(in->admin_password, strlen(in->admin_password),
		                      "adminPassword", err) != TK_OK)
			return TK_ERR;
		if (strcmp(in->admin_password, in->admin_email) == 0)
			return tk_error_set(err, 400, "weak_password", "adminPassword",
			                    "the password must not be the e-mail address");
	}
	if (in->timezone && (strlen(in->timezone) > 64 || strchr(in->timezone, '\'')))
		return tk_error_invalid(err, "timezone", "timezone must be an IANA name");
	if (in->locale) {
		/* BCP 47-ish: letters, digits, '-' and '_', at most 16. */
		size_t n = strlen(in->locale);
		bool ok = n >= 2 && n <= 16;
		for (size_t i = 0; ok && i < n; i++) {
			char c = in->locale[i];
			ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || c == '_';
		}
		if (!ok)
			return tk_error_invalid(err, "locale", "locale must look like en or da-DK");
	}
	if (in->sample_leads < 0 || in->sample_leads > PROVISION_SAMPLE_MAX)
		return tk_error_invalid(err, "sampleLeads", "sample leads must be 0 to %d",
		                        PROVISION_SAMPLE_MAX);
	return TK_OK;
}

tk_status provision_run(db_conn *conn, tk_arena *arena, const provision_request *in,
                        const unsigned char master_key[32], const char *dashboard_base,
                        const provision_actor *actor, provision_result *out, tk_error *err)
{
	char password_hash[TK_PASSWORD_HASH_MAX] = "";
	if (provision_validate(in, err) != TK_OK)
		return TK_ERR;
	if (in->admin_email && tk_password_hash(in->admin_password, strlen(in->admin_password),
	                                        password_hash, err) != TK_OK)
		return TK_ERR;

	unsigned char key_hash[TK_APIKEY_HASH_LEN];
	char key_hash_hex[67], prefix[TK_APIKEY_PREFIX_LEN + 1];
	tk_apikey_generate(out->api_key);
	tk_apikey_hash(out->api_key, TK_APIKEY_LEN, key_hash);
	tk_apikey_hash_hex(key_hash, key_hash_hex);
	memcpy(prefix, out->api_key, TK_APIKEY_PREFIX_LEN);
	prefix[TK_APIKEY_PREFIX_LEN] = '\0';

	tk_datakey dk;
	tk_datakey_generate(master_key, &dk);
	char *wrapped_hex = tk_arena_alloc(arena, sizeof dk.wrapped * 2 + 3);
	wrapped_hex[0] = '\\';
	wrapped_hex[1] = 'x';
	sodium_bin2hex(wrapped_hex + 2, sizeof dk.wrapped * 2 + 1, dk.wrapped, sizeof dk.wrapped);
	char samples[16];
	snprintf(samples, sizeof samples, "%d", in->sample_leads);

	char tenant_id[TK_UUID_LEN + 1];
	tk_uuid_v4(tenant_id);
	const char *params[15] = {
	    in->name,
	    in->plan ? in->plan : "basic",
	    in->billing_email,
	    in->admin_email,
	    in->admin_email ? in->admin_name : NULL,
	    in->admin_email ? password_hash : NULL,
	    in->timezone ? in->timezone : "UTC",
	    in->locale ? in->locale : "en",
	    key_hash_hex,
	    prefix,
	    dk.id,
	    wrapped_hex,
	    samples,
	    dashboard_base,
	    tenant_id,
	};
	db_tx *tx = db_tx_new(arena, conn);
	int q = db_tx_add(tx, provision_sql, 15, params);
	const char *audit_params[] = {actor->token_id, actor->name, tenant_id, samples};
	db_tx_add(tx, audit_sql, 4, audit_params);
	tk_status st = db_tx_run(tx, err);
	if (st == TK_OK) {
		PGresult *r = db_tx_result(tx, q);
		snprintf(out->tenant_id, sizeof out->tenant_id, "%s", PQgetvalue(r, 0, 0));
		snprintf(out->slug, sizeof out->slug, "%s", PQgetvalue(r, 0, 1));
		snprintf(out->admin_user_id, sizeof out->admin_user_id, "%s", PQgetvalue(r, 0, 2));
		snprintf(out->dashboard_url, sizeof out->dashboard_url, "%s", PQgetvalue(r, 0, 3));
	}
	db_tx_clear(tx);
	sodium_memzero(password_hash, sizeof password_hash);
	if (st != TK_OK)
		sodium_memzero(out->api_key, sizeof out->api_key);
	return st;
}
