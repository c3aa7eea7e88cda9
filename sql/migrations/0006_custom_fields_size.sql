-- 0006_custom_fields_size.sql - measure customFields the way the API does.
--
-- The API limits customFields to 16 KiB of compact JSON ({"a":1}).  jsonb's
-- text form adds a space after every ':' and ',' ({"a": 1}), so measuring
-- it rejected objects the API accepts.  json_compact_length() subtracts
-- those spaces; the checks below raise TKC01 (400 validation_error on
-- field customFields) so a PATCH merge that grows past the limit is
-- reported on the right field, and the table CHECK stays as the backstop.

CREATE FUNCTION json_compact_length(j jsonb) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT octet_length(j::text) - coalesce((
        SELECT sum(CASE jsonb_typeof(v)
                       WHEN 'object' THEN greatest(2 * (SELECT count(*) FROM jsonb_object_keys(v)) - 1, 0)
                       WHEN 'array' THEN greatest(jsonb_array_length(v) - 1, 0)
                       ELSE 0 END)
          FROM jsonb_path_query(j, 'strict $.**') AS v), 0)
$$;

CREATE FUNCTION lead_custom_fields_checked(p jsonb) RETURNS jsonb
    LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF p IS NULL THEN
        RETURN '{}'::jsonb;
    END IF;
    IF jsonb_typeof(p) <> 'object' THEN
        RAISE EXCEPTION 'customFields must be a JSON object' USING ERRCODE = 'TKC01';
    END IF;
    IF json_compact_length(p) > 16384 THEN
        RAISE EXCEPTION 'customFields must be at most 16384 bytes' USING ERRCODE = 'TKC01';
    END IF;
    RETURN p;
END $$;

-- PATCH semantics: a shallow merge; keys given replace, a key given as null is removed.
CREATE FUNCTION lead_custom_fields_merge(old jsonb, patch jsonb) RETURNS jsonb
    LANGUAGE sql IMMUTABLE AS $$
    SELECT lead_custom_fields_checked(
        (old || patch) - ARRAY(SELECT key FROM jsonb_each(patch) WHERE value = 'null'::jsonb))
$$;

ALTER TABLE leads DROP CONSTRAINT leads_custom_fields_check;
ALTER TABLE leads ADD CONSTRAINT leads_custom_fields_check
    CHECK (jsonb_typeof(custom_fields) = 'object' AND json_compact_length(custom_fields) <= 16384);

REVOKE ALL ON FUNCTION json_compact_length(jsonb), lead_custom_fields_checked(jsonb),
    lead_custom_fields_merge(jsonb, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION json_compact_length(jsonb), lead_custom_fields_checked(jsonb),
    lead_custom_fields_merge(jsonb, jsonb) TO tekup_app, tekup_operator;
