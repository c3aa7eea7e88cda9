-- bench/seed.sql - the benchmark's fixed, reproducible dataset (run as tekup_owner).
--
--   tenants 1..100   "small": 1,000 leads each
--   tenant  101      "large": 100,000 leads
--
-- Everything is derived from the tenant number n and the lead number k by
-- integer arithmetic (no random(), no now()), so two runs produce the same
-- rows, and the benchmark scripts can address rows without a lookup:
--
--   tenant n id   b0000000-0000-4000-8000-<n, 12 decimal digits>
--   lead k of n   <n, 8 hex digits>-0000-4000-8000-<k, 12 decimal digits>
--   key of n      'tk_' || hex(sha256('tekup-bench-' || n))   (stored as sha256(key))
--   user u of n   c0000000-0000-4000-8000-<n * 10 + u, 12 digits>   (u = 1..4; 1 is admin)
--   created_at    2026-07-01T00:00:00Z - (k * (one year / N) + (k * 7919 mod 10^6)) us
--                 (N = leads of the tenant): lead k is the k-th newest of its tenant,
--                 so its keyset position in -createdAt order is k.
--
-- Set-based: one INSERT ... SELECT per table.  Re-running it on a seeded
-- database fails on the primary keys (the harness always seeds a fresh cluster).

\set ON_ERROR_STOP on
SET synchronous_commit = off;
SET client_min_messages = warning;

BEGIN;

CREATE TEMP TABLE bench_tenants ON COMMIT DROP AS
SELECT n,
       ('b0000000-0000-4000-8000-' || lpad(n::text, 12, '0'))::uuid AS id,
       CASE WHEN n <= 100 THEN 1000 ELSE 100000 END AS nleads,
       CASE WHEN n = 101 THEN 'enterprise'
            ELSE (ARRAY['basic', 'professional', 'enterprise'])[1 + n % 3] END AS plan,
       'tk_' || encode(sha256(convert_to('tekup-bench-' || n, 'UTF8')), 'hex') AS api_key,
       (ARRAY['Nordlys', 'Fjordline', 'Skagen', 'Baltic', 'Hygge', 'Vesterhavet', 'Kattegat',
              'Limfjord', 'Bornholm', 'Odense', 'Aalborg', 'Esbjerg', 'Roskilde', 'Vejle',
              'Herning', 'Kolding', 'Silkeborg', 'Randers', 'Horsens', 'Viborg'])[1 + n % 20]
         || ' '
         || (ARRAY['Logistics', 'Foods', 'Analytics', 'Cloud', 'Energy', 'Marine', 'Health',
                   'Robotics', 'Design', 'Finance', 'Retail', 'Media'])[1 + (n * 7) % 12]
         || ' ' || lpad(n::text, 3, '0') AS name
  FROM generate_series(1, 101) AS n;

-- data_retention_days: the leads are dated 2025-07 .. 2026-07, whenever the
-- benchmark runs; ten years keeps the server's daily retention job off them.
INSERT INTO tenants (id, name, slug, status, subscription_plan, enabled_features,
                     resource_limits, billing_email, encryption_key_id, data_retention_days,
                     created_at, updated_at)
SELECT t.id, t.name, 'bench-' || lpad(t.n::text, 3, '0'), 'active', p.name, p.features, p.limits,
       'billing@bench-' || t.n || '.example.com', 'tdk_bench_' || t.n, 3650,
       timestamptz '2025-06-01 00:00:00+00' + t.n * interval '1 hour',
       timestamptz '2025-06-01 00:00:00+00' + t.n * interval '1 hour'
  FROM bench_tenants t JOIN plans p ON p.name = t.plan;

INSERT INTO tenant_settings (tenant_id) SELECT id FROM bench_tenants;

INSERT INTO api_keys (tenant_id, id, key_hash, prefix, name, created_at)
SELECT t.id, ('a0000000-0000-4000-8000-' || lpad(t.n::text, 12, '0'))::uuid,
       sha256(convert_to(t.api_key, 'UTF8')), left(t.api_key, 11), 'bench',
       timestamptz '2025-06-01 00:00:00+00'
  FROM bench_tenants t;

-- 4 users per tenant (the basic plan allows 5); user u of tenant n has id
-- c0000000-0000-4000-8000-<n * 10 + u as 12 digits>; user 1 is the admin.
INSERT INTO users (tenant_id, id, email, name, created_at, updated_at)
SELECT t.id, ('c0000000-0000-4000-8000-' || lpad((t.n * 10 + u)::text, 12, '0'))::uuid,
       lower((ARRAY['Mette', 'Jonas', 'Sofie', 'Lars'])[u]) || '@bench-' || t.n || '.example.com',
       (ARRAY['Mette', 'Jonas', 'Sofie', 'Lars'])[u] || ' '
         || (ARRAY['Holm', 'Berg', 'Lund', 'Dahl'])[1 + (t.n + u) % 4],
       timestamptz '2025-06-01 00:00:00+00', timestamptz '2025-06-01 00:00:00+00'
  FROM bench_tenants t CROSS JOIN generate_series(1, 4) AS u;

INSERT INTO tenant_users (tenant_id, user_id, role)
SELECT u.tenant_id, u.id, CASE WHEN right(u.id::text, 1) = '1' THEN 'admin' ELSE 'user' END
  FROM users u JOIN bench_tenants t ON t.id = u.tenant_id;

-- h is a cheap deterministic mix of (n, k) (a multiplicative hash, 32 bits);
-- h1..h5 are independent-looking draws from it.
INSERT INTO leads (tenant_id, id, name, email, phone, company, status, source,
                   created_at, updated_at, created_by, assigned_to, custom_fields, version,
                   last_activity_at, status_changed_at)
SELECT t.id,
       (lpad(to_hex(t.n), 8, '0') || '-0000-4000-8000-' || lpad(g.k::text, 12, '0'))::uuid,
       f.first || ' ' || f.last,
       lower(f.first || '.' || f.last || g.k || '@' || f.domain),
       '+45 ' || lpad(((h.h % 90000000) + 10000000)::text, 8, '0'),
       f.company,
       -- 30% NEW, 25% CONTACTED, 15% QUALIFIED, 10% PROPOSAL, 10% WON, 10% LOST
       CASE WHEN h.h3 < 30 THEN 'NEW' WHEN h.h3 < 55 THEN 'CONTACTED'
            WHEN h.h3 < 70 THEN 'QUALIFIED' WHEN h.h3 < 80 THEN 'PROPOSAL'
            WHEN h.h3 < 90 THEN 'WON' ELSE 'LOST' END,
       (ARRAY['website', 'referral', 'linkedin', 'event', 'cold-call', 'partner',
              'webinar'])[1 + h.h4 % 7],
       c.created_at,
       c.created_at + (h.h5 % 30) * interval '1 day',
       NULL,
       CASE WHEN h.h4 % 3 = 0 THEN NULL
            ELSE ('c0000000-0000-4000-8000-' || lpad((t.n * 10 + 1 + h.h5 % 4)::text, 12, '0'))::uuid
       END,
       jsonb_build_object('priority', (ARRAY['high', 'medium', 'low'])[1 + h.h2 % 3],
                          'industry', (ARRAY['retail', 'manufacturing', 'software', 'shipping',
                                             'healthcare', 'energy'])[1 + h.h5 % 6],
                          'score', h.h % 100),
       1 + h.h4 % 3,
       c.created_at + (h.h5 % 30) * interval '1 day',
       c.created_at + (h.h5 % 15) * interval '1 day'
  FROM bench_tenants t
 CROSS JOIN LATERAL generate_series(1, t.nleads) AS g(k)
 CROSS JOIN LATERAL (
       SELECT x AS h, (x >> 5) AS h2, ((x >> 9) % 100) AS h3, (x >> 13) AS h4, (x >> 17) AS h5
         FROM (SELECT ((g.k::bigint * 2654435761 + t.n * 40503 + 12345) % 4294967296) AS x) s
       ) h
 CROSS JOIN LATERAL (
       -- whole microseconds, so a pgbench script can recompute it exactly
       SELECT timestamptz '2026-07-01 00:00:00+00'
              - (g.k::bigint * (31536000000000 / t.nleads) + (g.k::bigint * 7919) % 1000000)
                * interval '1 microsecond' AS created_at
       ) c
 CROSS JOIN LATERAL (
       SELECT (ARRAY['Anna', 'Lars', 'Mette', 'Jonas', 'Sofie', 'Emil', 'Ida', 'Mads', 'Freja',
                     'Oliver', 'Clara', 'William', 'Laura', 'Noah', 'Emma', 'Lucas', 'Alma',
                     'Victor', 'Maja', 'Oscar', 'Ella', 'Magnus', 'Astrid', 'Frederik',
                     'Karla', 'Elias', 'Josefine', 'Anton', 'Nora', 'Carl'])[1 + h.h % 30] AS first,
              (ARRAY['Hansen', 'Nielsen', 'Jensen', 'Pedersen', 'Larsen', 'Andersen',
                     'Christensen', 'Rasmussen', 'Jorgensen', 'Petersen', 'Madsen',
                     'Kristensen', 'Olsen', 'Thomsen', 'Christiansen', 'Poulsen', 'Johansen',
                     'Moller', 'Mortensen', 'Knudsen', 'Smith', 'Berg', 'Lund',
                     'Holm'])[1 + h.h2 % 24] AS last,
              (ARRAY['Nordic', 'Fjord', 'Aarhus', 'Copenhagen', 'Jutland', 'Zealand', 'Danish',
                     'Scandi', 'North Sea', 'Viking', 'Harbour', 'Beech'])[1 + h.h4 % 12]
                || ' '
                || (ARRAY['Logistics', 'Foods', 'Analytics', 'Cloud', 'Shipping', 'Dairy',
                          'Wind Power', 'Pharma', 'Furniture', 'Software', 'Textiles',
                          'Consulting', 'Bikes', 'Brewing'])[1 + h.h5 % 14]
                || (ARRAY[' ApS', ' A/S', ' I/S', ''])[1 + h.h3 % 4] AS company,
              (ARRAY['example.com', 'example.org', 'example.net', 'mail.example.dk'])[1 + h.h5 % 4]
                AS domain
       ) f;

COMMIT;

VACUUM (ANALYZE) tenants, tenant_settings, api_keys, users, tenant_users, leads;
