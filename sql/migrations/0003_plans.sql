-- 0003_plans.sql - the seed's plans (TenantProvisioningService) and slugs.
--
-- getDefaultFeatures and getDefaultLimits, exactly.  "trial" has basic's
-- features and limits, for trial_days.

CREATE TABLE plans (
    name varchar(50) PRIMARY KEY,
    features jsonb NOT NULL,
    limits jsonb NOT NULL,
    trial_days integer
);

INSERT INTO plans (name, features, limits, trial_days) VALUES
('basic',
 '{"lead:read": true, "lead:create": true, "lead:update": true, "lead:delete": false,
   "voice:basic": true, "api:access": true, "export:csv": false}',
 '{"maxUsers": 5, "maxLeads": 1000, "maxStorageMb": 100, "apiRateLimit": 100}', NULL),
('trial',
 '{"lead:read": true, "lead:create": true, "lead:update": true, "lead:delete": false,
   "voice:basic": true, "api:access": true, "export:csv": false}',
 '{"maxUsers": 5, "maxLeads": 1000, "maxStorageMb": 100, "apiRateLimit": 100}', 14),
('professional',
 '{"lead:read": true, "lead:create": true, "lead:update": true, "lead:delete": true,
   "voice:advanced": true, "api:access": true, "export:csv": true, "automation:basic": true}',
 '{"maxUsers": 25, "maxLeads": 10000, "maxStorageMb": 1000, "apiRateLimit": 1000}', NULL),
('enterprise',
 '{"lead:read": true, "lead:create": true, "lead:update": true, "lead:delete": true,
   "voice:advanced": true, "api:access": true, "export:csv": true, "export:api": true,
   "automation:advanced": true, "sso:enabled": true, "audit:advanced": true}',
 '{"maxUsers": 100, "maxLeads": 100000, "maxStorageMb": 10000, "apiRateLimit": 10000}', NULL);

-- The seed's generateSlug (lower-case, non-alphanumerics to '-', runs of '-'
-- collapsed, trimmed, first 50 characters), made unique with a "-N" suffix.
CREATE FUNCTION make_tenant_slug(p_name text) RETURNS text
    LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    base text;
    candidate text;
    n integer := 1;
BEGIN
    base := substring(trim(both '-' from
                regexp_replace(regexp_replace(lower(p_name), '[^a-z0-9]', '-', 'g'), '-+', '-', 'g'))
            from 1 for 50);
    IF base = '' THEN
        base := 'tenant';
    END IF;
    candidate := base;
    WHILE EXISTS (SELECT 1 FROM tenants WHERE slug = candidate) LOOP
        n := n + 1;
        candidate := base || '-' || n;
    END LOOP;
    RETURN candidate;
END $$;
REVOKE ALL ON FUNCTION make_tenant_slug(text) FROM PUBLIC;
