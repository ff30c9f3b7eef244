//! Resumable uploads over a link that drops: a 32 MiB upload cut mid-way
//! continues on a new connection re-sending at most one block, and the
//! stored shard is exact; a resume of another payload starts over; a
//! resume that lies about its payload, or of an upload still being
//! received, is refused and changes nothing.

mod common;

use cairn_chunkstore::layout::SHARD_BLOCK;
use cairn_chunkstore::protocol::{
    decode_response, encode_request, Request, Response, MAX_NOISE_MESSAGE, MAX_PAYLOAD,
};
use cairn_chunkstore::transport::NoiseStream;
use cairn_chunkstore::{Status, StoreClient, Upload};
use common::cut_proxy::CutProxy;
use common::{eventually, temp_files, Rng, TestStore};
use tokio::net::TcpStream;

/// What the Noise framing adds to `len` payload bytes, and then some:
/// 18 bytes per 64 KiB message, the handshake, the request frames.
fn overhead(len: u64) -> u64 {
    len / 2000 + 4096
}

async fn connect(proxy: &CutProxy, store: &TestStore) -> StoreClient {
    StoreClient::connect(proxy.addr, &store.secret)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_upload_resumes_resending_at_most_one_block() {
    let store = TestStore::start().await;
    let len = 32u64 << 20;
    let data = Rng(0x32).bytes(len as usize);
    let cut = (10 << 20) + 12_345;
    let proxy = CutProxy::start(store.addr, vec![cut]).await;

    let mut up = Upload::new("chunk-big", &data);
    let err = connect(&proxy, &store)
        .await
        .upload(&mut up)
        .await
        .unwrap_err();
    assert!(err.retryable(), "{err}");
    assert!(up.started());

    let stat = connect(&proxy, &store).await.upload(&mut up).await.unwrap();
    assert_eq!((stat.len, stat.crc), (len, crc32c::crc32c(&data)));
    let held = up.held().expect("the second attempt resumed");
    assert!(
        held >= (10 << 20) - SHARD_BLOCK && held.is_multiple_of(SHARD_BLOCK),
        "store kept {held} bytes of {cut} sent"
    );

    // Delivered to the store, both connections together: the payload once,
    // plus at most one block sent twice (and the bytes of the one Noise
    // message cut in half, which cannot be authenticated).
    let upstream = proxy.upstream();
    assert_eq!(upstream.len(), 2, "{upstream:?}");
    assert_eq!(upstream[0], cut);
    let total = proxy.upstream_total();
    eprintln!("cut after {cut} bytes; store kept {held}; delivered {total} bytes for {len} ({upstream:?})");
    assert!(
        total <= len + SHARD_BLOCK + MAX_NOISE_MESSAGE as u64 + overhead(len),
        "sent {total} bytes for {len}: {upstream:?}"
    );

    let mut direct = store.client().await;
    let stat = direct.stat("chunk-big").await.unwrap();
    assert_eq!((stat.len, stat.crc), (len, crc32c::crc32c(&data)));
    assert!(direct.get("chunk-big", 0, len).await.unwrap() == data);
    assert!(temp_files(&store.data_dir()).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_of_another_payload_starts_over() {
    let store = TestStore::start().await;
    let first = Rng(1).bytes(4 << 20);
    let proxy = CutProxy::start(store.addr, vec![3 << 20]).await;
    let mut up = Upload::new("chunk-x", &first);
    connect(&proxy, &store)
        .await
        .upload(&mut up)
        .await
        .unwrap_err();

    let data_dir = store.data_dir();
    eventually("the cut upload's blocks are kept", || {
        temp_files(&data_dir).len() == 1
    })
    .await;

    // Same key and length, other bytes: nothing kept is used, and what was
    // kept is dropped.
    let second = Rng(2).bytes(4 << 20);
    let mut up = Upload::resuming("chunk-x", &second);
    connect(&proxy, &store).await.upload(&mut up).await.unwrap();
    assert_eq!(up.held(), Some(0));
    assert!(proxy.upstream()[1] >= 4 << 20, "{:?}", proxy.upstream());
    let mut direct = store.client().await;
    assert!(direct.get("chunk-x", 0, 4 << 20).await.unwrap() == second);
    assert!(temp_files(&store.data_dir()).is_empty());
}

/// A raw authenticated connection, for requests the client never sends.
async fn raw(store: &TestStore) -> NoiseStream {
    let tcp = TcpStream::connect(store.addr).await.unwrap();
    NoiseStream::initiate(tcp, &store.secret).await.unwrap()
}

async fn ask(stream: &mut NoiseStream, req: &Request) -> Response {
    stream.write_frame(&encode_request(req)).await.unwrap();
    stream.flush().await.unwrap();
    decode_response(&stream.read_frame().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lying_and_garbage_resumes_are_refused_and_change_nothing() {
    let store = TestStore::start().await;
    let mut client = store.client().await;
    client.put("chunk-kept", b"already here").await.unwrap();
    let data = Rng(5).bytes(3 << 20);
    let crc = crc32c::crc32c(&data);
    let proxy = CutProxy::start(store.addr, vec![(2 << 20) + 500]).await;
    let mut up = Upload::new("chunk-y", &data);
    connect(&proxy, &store)
        .await
        .upload(&mut up)
        .await
        .unwrap_err();

    // Resume naming the kept upload, then other bytes for the rest: the
    // whole payload's crc does not match, nothing is stored.
    let mut stream = raw(&store).await;
    let resume = Request::Resume {
        key: "chunk-y".into(),
        len: data.len() as u64,
        crc,
    };
    let Response::Resume { from } = ask(&mut stream, &resume).await else {
        panic!("no resume answer");
    };
    assert!(from >= SHARD_BLOCK && from < data.len() as u64, "{from}");
    let mut other = data[from as usize..].to_vec();
    other[10] ^= 1;
    stream.write(&other).await.unwrap();
    stream.flush().await.unwrap();
    match decode_response(&stream.read_frame().await.unwrap()).unwrap() {
        Response::Error { status, detail } => {
            assert_eq!(status, Status::BadRequest);
            assert!(detail.contains("crc32c"), "{detail}");
        }
        other => panic!("lying resume answered {other:?}"),
    }
    let err = client.stat("chunk-y").await.unwrap_err();
    assert_eq!(err.status(), Status::NotFound, "{err}");
    assert!(temp_files(&store.data_dir()).is_empty());

    // A resume of more than a shard may hold: refused, the connection closes.
    let mut stream = raw(&store).await;
    let mut body = encode_request(&Request::Resume {
        key: "chunk-kept".into(),
        len: 0,
        crc: 0,
    });
    let at = body.len() - 12;
    body[at..at + 8].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    stream.write_frame(&body).await.unwrap();
    stream.flush().await.unwrap();
    match decode_response(&stream.read_frame().await.unwrap()).unwrap() {
        Response::Error { status, .. } => assert_eq!(status, Status::BadRequest),
        other => panic!("huge resume answered {other:?}"),
    }

    // A resume of an upload another connection is still sending: refused
    // (after a bounded wait), and that upload still completes.
    let mut sender = raw(&store).await;
    let upload = Request::Upload {
        key: "chunk-z".into(),
        len: data.len() as u64,
        crc,
    };
    sender.write_frame(&encode_request(&upload)).await.unwrap();
    sender.write(&data[..1 << 20]).await.unwrap();
    sender.flush().await.unwrap();
    let mut second = raw(&store).await;
    let resume = Request::Resume {
        key: "chunk-z".into(),
        len: data.len() as u64,
        crc,
    };
    match ask(&mut second, &resume).await {
        Response::Error { status, detail } => {
            assert_eq!(status, Status::Unavailable);
            assert!(detail.contains("another connection"), "{detail}");
        }
        other => panic!("concurrent resume answered {other:?}"),
    }
    sender.write(&data[1 << 20..]).await.unwrap();
    sender.flush().await.unwrap();
    match decode_response(&sender.read_frame().await.unwrap()).unwrap() {
        Response::Put(stat) => assert_eq!((stat.len, stat.crc), (data.len() as u64, crc)),
        other => panic!("upload answered {other:?}"),
    }

    // What was stored before is untouched.
    assert_eq!(
        client.get("chunk-kept", 0, 12).await.unwrap(),
        b"already here"
    );
    assert!(matches!(
        client.get("chunk-z", 0, 4).await,
        Ok(bytes) if bytes == data[..4]
    ));
}
