//! The chunk-store daemon: one per remote drive. It keeps encrypted shards as
//! checksummed files written durably (temp name, fsync, rename), reports its
//! capacity, labels, host and zone, and deletes a shard only when the gateway
//! asks. The daemon and its wire protocol arrive with the chunk-store issue;
//! until then the gateway's ingest cache is the only home of file data.
