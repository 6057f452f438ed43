-- State of the Postgres sink, written in the same transaction as the rows it describes.

-- The next Kafka offset to read per consumer group and partition. The sink seeks here on start
-- and after every rebalance, never to Kafka's committed offsets: rows and offsets commit
-- together, so a crash can neither lose nor repeat a record. The sink only moves an offset
-- forward (GREATEST), so a stale instance finishing a batch after a rebalance cannot rewind it.
CREATE TABLE sink_offsets (
  group_id    text        NOT NULL CHECK (group_id <> ''),
  topic       text        NOT NULL CHECK (topic <> ''),
  partition   integer     NOT NULL CHECK (partition >= 0),
  next_offset bigint      NOT NULL CHECK (next_offset >= 0),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (group_id, topic, partition)
);

-- Records the sink could not turn into rows (not JSON, a missing field, an amount with more than
-- four decimals...). Kept with their original bytes so nothing is lost and a bad record never
-- stops a partition; each one is a bug upstream and worth an alert.
CREATE TABLE sink_rejects (
  id               bigserial   PRIMARY KEY,
  source_topic     text        NOT NULL,
  source_partition integer     NOT NULL CHECK (source_partition >= 0),
  source_offset    bigint      NOT NULL CHECK (source_offset >= 0),
  record_key       bytea,
  record_value     bytea,
  error            text        NOT NULL,
  rejected_at      timestamptz NOT NULL DEFAULT now(),
  CONSTRAINT sink_rejects_source_key UNIQUE (source_topic, source_partition, source_offset)
);
