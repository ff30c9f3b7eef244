//! Round trips and hostile frames for the wire encoding in `protocol.rs`.

use super::*;

#[test]
fn requests_round_trip() {
    let reqs = [
        Request::Put {
            key: "c-1.x_y".into(),
            len: 5,
        },
        Request::Get {
            key: "k".into(),
            offset: 1,
            len: 2,
        },
        Request::Delete { key: "k".into() },
        Request::Stat { key: "k".into() },
        Request::List {
            after: Some("k".into()),
            limit: 10,
        },
        Request::List {
            after: None,
            limit: MAX_LIST,
        },
        Request::Capacity,
        Request::Health,
        Request::Upload {
            key: "u".into(),
            len: MAX_PAYLOAD,
            crc: 0xdead_beef,
        },
        Request::Resume {
            key: "u".into(),
            len: 0,
            crc: 1,
        },
    ];
    for req in reqs {
        assert_eq!(decode_request(&encode_request(&req)), Ok(req));
    }
}

#[test]
fn responses_round_trip() {
    let resps = [
        Response::Error {
            status: Status::NoSpace,
            detail: "full".into(),
        },
        Response::Put(ShardStat { len: 3, crc: 7 }),
        Response::Get { len: 9 },
        Response::Delete { existed: true },
        Response::List(vec![ListEntry {
            key: "a".into(),
            len: 1,
        }]),
        Response::Capacity(Capacity {
            total: 1,
            free: 2,
            used: 3,
            stored: 4,
            shards: 5,
            reserve: 6,
            zone: "z".into(),
            host: "h".into(),
            name: "n".into(),
            store_uuid: "u".into(),
            labels: vec!["hdd".into()],
        }),
        Response::Health,
        Response::Resume { from: 1 << 20 },
    ];
    for resp in resps {
        assert_eq!(decode_response(&encode_response(&resp)), Ok(resp));
    }
}

#[test]
fn bad_frames_are_errors_not_panics() {
    assert!(decode_request(&[]).is_err());
    assert!(decode_request(&[0x09]).is_err());
    assert!(decode_request(&[0x03, 3, b'a', b'/', b'b']).is_err());
    assert!(decode_request(&[0x03, 2, b'.', b'.']).is_err());
    assert!(decode_request(&[0x03, 5, b'a']).is_err());
    assert!(decode_request(&[0x07, 0]).is_err());
    let mut put = encode_request(&Request::Put {
        key: "k".into(),
        len: 0,
    });
    put[3..11].copy_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    assert!(decode_request(&put).is_err());
    let mut resume = encode_request(&Request::Resume {
        key: "k".into(),
        len: 0,
        crc: 0,
    });
    resume[3..11].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(decode_request(&resume).is_err(), "huge resume length");
    assert!(decode_request(&resume[..resume.len() - 1]).is_err());
    let mut seed = 0x1234_5678_u32;
    for len in 0..2000 {
        let body: Vec<u8> = (0..len % 64)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 17;
                seed ^= seed << 5;
                seed as u8
            })
            .collect();
        let _ = decode_request(&body);
        let _ = decode_response(&body);
    }
}

#[test]
fn keys_are_checked() {
    check_key("chunk-00ff.v1_a").unwrap();
    for bad in ["", ".hidden", "a/b", "a b", "é", &"k".repeat(129)] {
        assert!(check_key(bad).is_err(), "{bad:?}");
    }
}
