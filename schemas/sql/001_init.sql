-- migvis catalog schema, version 1 (schemas/db.md). This is a format: never
-- edit a released migration; add NNN_<what>.sql with the next number instead.
CREATE TABLE sweeps (
  name        TEXT PRIMARY KEY,
  path        TEXT NOT NULL DEFAULT '',
  yaml        TEXT NOT NULL DEFAULT '',
  created_at  TEXT NOT NULL
);

CREATE TABLE jobs (
  job_id      TEXT PRIMARY KEY,
  hash        TEXT NOT NULL,
  sweep       TEXT NOT NULL DEFAULT '',
  stage       TEXT NOT NULL,
  key         TEXT NOT NULL DEFAULT '{}',
  params      TEXT NOT NULL DEFAULT '{}',
  seed        INTEGER,
  status      TEXT NOT NULL DEFAULT 'planned'
              CHECK (status IN ('planned','queued','running','done','failed','blocked','cancelled')),
  attempts    INTEGER NOT NULL DEFAULT 0,
  host        TEXT NOT NULL DEFAULT '',
  dir         TEXT NOT NULL DEFAULT '',
  started_at  TEXT NOT NULL DEFAULT '',
  finished_at TEXT NOT NULL DEFAULT '',
  wall_s      REAL,
  provenance  TEXT NOT NULL DEFAULT '{}',
  upstream    TEXT NOT NULL DEFAULT '{}',
  note        TEXT NOT NULL DEFAULT ''
);
CREATE INDEX jobs_by_stage_status ON jobs (stage, status);
CREATE INDEX jobs_by_hash ON jobs (hash);

CREATE TABLE job_params (
  job_id      TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  value_text  TEXT,
  value_num   REAL,
  PRIMARY KEY (job_id, name)
) WITHOUT ROWID;
-- No index by name: filters run as EXISTS (... WHERE job_id = j.job_id AND
-- name = ?) per candidate job, which the primary key serves; an index by name
-- would cost ~30% of upsert time (bench/bench_catalog.cc).

CREATE TABLE metrics (
  job_id      TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  name        TEXT NOT NULL,
  step        INTEGER,
  value       REAL,
  UNIQUE (job_id, name, step)
);
-- UNIQUE treats NULL steps as distinct; this index makes scalars unique too.
CREATE UNIQUE INDEX metrics_scalar_unique ON metrics (job_id, name) WHERE step IS NULL;
CREATE INDEX metrics_by_name ON metrics (name, job_id);

CREATE TABLE artifacts (
  job_id      TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  kind        TEXT NOT NULL,
  path        TEXT NOT NULL,
  h5          TEXT NOT NULL DEFAULT '',
  UNIQUE (job_id, kind, path, h5)
);

CREATE TABLE sweep_jobs (
  sweep       TEXT NOT NULL,
  job_id      TEXT NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
  PRIMARY KEY (sweep, job_id)
) WITHOUT ROWID;
CREATE INDEX sweep_jobs_by_job ON sweep_jobs (job_id);
