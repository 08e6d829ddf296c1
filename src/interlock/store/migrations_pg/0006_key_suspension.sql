-- A key can be suspended (reversibly) by the spend-velocity guard or an admin.
ALTER TABLE keys ADD COLUMN suspended_at DOUBLE PRECISION;
ALTER TABLE keys ADD COLUMN suspended_reason TEXT NOT NULL DEFAULT '';
