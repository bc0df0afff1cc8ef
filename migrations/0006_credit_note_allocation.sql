-- A credit note keeps how much of each invoice component (taxable amount per rate set, tax per
-- group) it credited, so later credit notes can never credit the same component twice.
ALTER TABLE credit_notes ADD COLUMN allocation jsonb NOT NULL DEFAULT '{}'::jsonb;
ALTER TABLE credit_notes ALTER COLUMN allocation DROP DEFAULT;
