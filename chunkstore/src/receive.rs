//! The store side of Put (0x01), Upload (0x10) and Resume (0x11): receiving
//! a payload into a [`PutWriter`] one block at a time and committing it. A
//! refused put still reads its data, so the stream stays in step; when the
//! connection drops mid-payload, a resumable upload keeps its whole blocks
//! for a Resume (see `partial.rs`), a plain put loses its temp file.

use std::io;
use std::sync::Arc;

use tokio::time::Instant;

use crate::error::StoreError;
use crate::layout::SHARD_BLOCK;
use crate::protocol::{encode_response, Response, ShardStat, RESUME_WAIT};
use crate::server::blocking;
use crate::store::{PutWriter, Store};
use crate::transport::NoiseStream;

/// Payload is read and written in pieces of one block, so a kept upload
/// holds every whole block that arrived.
const PUT_CHUNK: u64 = SHARD_BLOCK;

/// A put made durable.
#[derive(Debug)]
pub(crate) struct Stored {
    pub key: String,
    pub stat: ShardStat,
    /// Bytes the store held already from an earlier connection.
    pub resumed: u64,
}

/// The outcome of a put-like request; the outer error is the connection's.
type Outcome = io::Result<Result<Stored, StoreError>>;

/// Put (0x01, no crc: not resumable) or Upload (0x10, resumable, starts
/// over).
pub(crate) async fn put(
    store: &Arc<Store>,
    stream: &mut NoiseStream,
    key: String,
    len: u64,
    crc: Option<u32>,
) -> Outcome {
    // One line per upload sent from its first byte (a Resume logs its own):
    // the WAN tests count them per key.
    tracing::debug!(key, len, "put begins");
    let s = Arc::clone(store);
    let writer = blocking(move || s.begin_put(&key, len, crc)).await;
    receive(stream, writer, len).await
}

/// Resume (0x11): tells the client how much the store holds, then receives
/// the rest. Refused up front, the error is answered and no data follows.
pub(crate) async fn resume(
    store: &Arc<Store>,
    stream: &mut NoiseStream,
    key: String,
    len: u64,
    crc: u32,
) -> Outcome {
    let writer = match claim(store, &key, len, crc).await {
        Ok(writer) => writer,
        Err(err) => return Ok(Err(err)),
    };
    let from = writer.resumed();
    tracing::debug!(key, len, from, "put resumes");
    let told = async {
        stream
            .write_frame(&encode_response(&Response::Resume { from }))
            .await?;
        stream.flush().await
    };
    if let Err(err) = told.await {
        blocking(move || writer.keep()).await;
        return Err(err);
    }
    receive(stream, Ok(writer), len - from).await
}

/// Takes the kept upload, waiting up to [`RESUME_WAIT`] while the same
/// upload is still being received on a connection whose drop the store has
/// not seen yet.
async fn claim(store: &Arc<Store>, key: &str, len: u64, crc: u32) -> Result<PutWriter, StoreError> {
    let deadline = Instant::now() + RESUME_WAIT;
    loop {
        let stopped = store.partials().stopped();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        let (s, k) = (Arc::clone(store), key.to_owned());
        match blocking(move || s.resume_upload(&k, len, crc)).await {
            Err(StoreError::UploadInProgress { .. }) if Instant::now() < deadline => {
                let _ = tokio::time::timeout_at(deadline, stopped).await;
            }
            other => return other,
        }
    }
}

/// Reads `remaining` payload bytes into `writer` and commits it.
async fn receive(
    stream: &mut NoiseStream,
    mut writer: Result<PutWriter, StoreError>,
    mut remaining: u64,
) -> Outcome {
    let mut buf = vec![0u8; PUT_CHUNK.min(remaining) as usize];
    while remaining > 0 {
        let n = PUT_CHUNK.min(remaining) as usize;
        if let Err(err) = stream.read_exact(&mut buf[..n]).await {
            if let Ok(w) = writer {
                blocking(move || w.keep()).await;
            }
            return Err(err);
        }
        remaining -= n as u64;
        if let Ok(mut w) = writer {
            let (w, b, res) = blocking(move || {
                let res = w.write(&buf[..n]);
                (w, buf, res)
            })
            .await;
            buf = b;
            writer = res.map(|()| w);
        }
    }
    Ok(match writer {
        Ok(w) => {
            let (key, resumed) = (w.key().to_owned(), w.resumed());
            blocking(move || w.finish())
                .await
                .map(|stat| Stored { key, stat, resumed })
        }
        Err(err) => Err(err),
    })
}
