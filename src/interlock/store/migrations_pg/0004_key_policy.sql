-- Per-key policy: data residency ('restricted' keeps requests on local/sovereign deployments)
-- and an opt-in response cache TTL (0 = off).
ALTER TABLE keys ADD COLUMN residency TEXT NOT NULL DEFAULT '';
ALTER TABLE keys ADD COLUMN cache_ttl_s BIGINT NOT NULL DEFAULT 0;
