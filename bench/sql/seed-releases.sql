-- Releases 1.@from.0 .. 1.(@to - 1).0 of hardware @hw, inserted directly: copies of that
-- hardware's published release 1.0.0 (same image), each with a completed 100 % rollout on the
-- template's channel. The service's catalog picks them up at its next periodic refresh.
-- Usage: sqlite3 DB -cmd '.parameter set @from 1000' -cmd '.parameter set @to 10000' \
--          -cmd ".parameter set @hw \"'nw-grow'\"" < seed-releases.sql
.timeout 30000
BEGIN;
CREATE TEMP TABLE seed AS
  WITH RECURSIVE n(i) AS (SELECT @from UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @to)
  SELECT i, randomblob(16) AS fid, randomblob(16) AS rid FROM n;
CREATE TEMP TABLE tmpl AS SELECT f.* FROM firmware f JOIN firmware_hardware h ON h.firmware_id = f.id
  WHERE h.hardware = @hw AND f.version = '1.0.0';
INSERT INTO firmware (id, version, version_key, size, sha256, release_signature, release_notes,
  min_from_version, mandatory, state, created_by, created_at, updated_at, published_at)
SELECT s.fid, '1.' || s.i || '.0', '1.' || s.i || '.0', t.size, t.sha256,
  t.release_signature, t.release_notes, t.min_from_version, t.mandatory, t.state,
  t.created_by, t.created_at, t.updated_at, t.published_at FROM seed s, tmpl t;
INSERT INTO firmware_hardware (firmware_id, hardware, version_key)
  SELECT fid, @hw, '1.' || i || '.0' FROM seed;
INSERT INTO rollout (id, firmware_id, channel, salt, stages, current_stage, state,
  max_failure_rate, min_reports, created_by, stage_started_at, created_at, updated_at)
SELECT s.rid, s.fid, r.channel, r.salt, r.stages, r.current_stage, 'completed',
  r.max_failure_rate, r.min_reports, r.created_by, r.stage_started_at, r.created_at, r.updated_at
FROM seed s, rollout r JOIN tmpl t ON r.firmware_id = t.id;
COMMIT;
