"""0017: the flywheel: captured requests, feedback on requests and runs, datasets and eval results."""

from interlock.store.migrations.base import Migration

MIGRATION = Migration(
    17,
    "flywheel",
    (
        # One row per captured request (`flywheel.capture`): the text after guardrail redaction, never a key.
        # key_id: "" for the admin key; subject: the request's `user` (the end user, for erasure requests);
        # prompt_hash: the normalised prompt, for deduplication; size: bytes of request + response text.
        """CREATE TABLE captures (
    request_id        TEXT PRIMARY KEY,
    ts                {float} NOT NULL,
    key_id            TEXT NOT NULL,
    team_id           TEXT NOT NULL,
    org_id            TEXT NOT NULL,
    agent_id          TEXT NOT NULL,
    subject           TEXT NOT NULL,
    run_id            TEXT NOT NULL,
    endpoint          TEXT NOT NULL,
    alias             TEXT NOT NULL,
    deployment        TEXT NOT NULL,
    provider          TEXT NOT NULL,
    variant           TEXT NOT NULL,
    request           TEXT NOT NULL,
    response          TEXT NOT NULL,
    prompt_tokens     {bigint} NOT NULL,
    completion_tokens {bigint} NOT NULL,
    cost_micros       {bigint} NOT NULL,
    latency_ms        {float} NOT NULL,
    prompt_hash       TEXT NOT NULL,
    size              {bigint} NOT NULL
)""",
        "CREATE INDEX captures_ts ON captures (ts)",
        "CREATE INDEX captures_key ON captures (key_id)",
        "CREATE INDEX captures_subject ON captures (subject)",
        # kind: "request" or "run"; value: booleans as 0 and 1; demonstration: a corrected answer.
        """CREATE TABLE feedback (
    id            {serial},
    kind          TEXT NOT NULL,
    subject_id    TEXT NOT NULL,
    key_id        TEXT NOT NULL,
    metric        TEXT NOT NULL,
    value         {float} NOT NULL,
    comment       TEXT NOT NULL,
    demonstration TEXT NOT NULL,
    created_at    {float} NOT NULL,
    created_by    TEXT NOT NULL
)""",
        "CREATE INDEX feedback_subject ON feedback (kind, subject_id)",
        # A dataset version is immutable: its rows are written once, with the hash of their content.
        """CREATE TABLE datasets (
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    created_at    {float} NOT NULL,
    created_by    TEXT NOT NULL,
    source        TEXT NOT NULL,
    train_rows    INTEGER NOT NULL,
    eval_rows     INTEGER NOT NULL,
    content_hash  TEXT NOT NULL,
    PRIMARY KEY (name, version)
)""",
        # example: {"messages": [...], "tools"?: [...]} as JSON; request_id: the capture it came from ("" imported).
        """CREATE TABLE dataset_rows (
    name        TEXT NOT NULL,
    version     INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    split       TEXT NOT NULL,
    example     TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    PRIMARY KEY (name, version, position)
)""",
        "CREATE INDEX dataset_rows_request ON dataset_rows (request_id)",
        # summary: per model and check, the mean and its bootstrap 95% interval (JSON).
        """CREATE TABLE evals (
    id          TEXT PRIMARY KEY,
    dataset     TEXT NOT NULL,
    version     INTEGER NOT NULL,
    created_at  {float} NOT NULL,
    created_by  TEXT NOT NULL,
    models      TEXT NOT NULL,
    checks      TEXT NOT NULL,
    items       INTEGER NOT NULL,
    summary     TEXT NOT NULL
)""",
        # scores: check -> score in [0, 1] (JSON); error: why the model gave no answer ("" when it did).
        """CREATE TABLE eval_results (
    eval_id     TEXT NOT NULL,
    model       TEXT NOT NULL,
    position    INTEGER NOT NULL,
    answer      TEXT NOT NULL,
    scores      TEXT NOT NULL,
    error       TEXT NOT NULL,
    latency_ms  {float} NOT NULL,
    PRIMARY KEY (eval_id, model, position)
)""",
    ),
)
