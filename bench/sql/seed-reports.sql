-- Reports @from .. @to - 1 inserted directly: copies of the real report of device @tmpl, device
-- ids bulk-N, statuses cycling through the four that are not "failed" (so the rollout does not
-- halt itself meanwhile). The rollout's per-status counts (rollout_report_count) move with them,
-- as the service moves them in the report's transaction (the copies count towards health: `counted`
-- defaults to true).
-- Usage: sqlite3 DB -cmd '.parameter set @from 1000' -cmd '.parameter set @to 100000' \
--          -cmd ".parameter set @tmpl \"'http-0'\"" < seed-reports.sql
.timeout 30000
BEGIN;
WITH RECURSIVE n(i) AS (SELECT @from UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @to)
INSERT INTO device_report (device_id, firmware_id, rollout_id, status, error, from_version,
                           report_count, updated_at)
SELECT 'bulk-' || n.i, r.firmware_id, r.rollout_id,
       CASE n.i % 4 WHEN 0 THEN 'downloading' WHEN 1 THEN 'downloaded'
                    WHEN 2 THEN 'installing' ELSE 'installed' END,
       NULL, r.from_version, 1, r.updated_at
FROM n, (SELECT * FROM device_report WHERE device_id = @tmpl) AS r;
INSERT INTO rollout_report_count (rollout_id, status, devices)
SELECT r.rollout_id,
       CASE n.i % 4 WHEN 0 THEN 'downloading' WHEN 1 THEN 'downloaded'
                    WHEN 2 THEN 'installing' ELSE 'installed' END AS status,
       COUNT(*)
FROM (WITH RECURSIVE n(i) AS (SELECT @from UNION ALL SELECT i + 1 FROM n WHERE i + 1 < @to) SELECT i FROM n) AS n,
     (SELECT * FROM device_report WHERE device_id = @tmpl) AS r
WHERE true -- SQLite: keeps ON CONFLICT from being read as a join's ON
GROUP BY r.rollout_id, status
ON CONFLICT (rollout_id, status) DO UPDATE SET devices = devices + excluded.devices;
COMMIT;
