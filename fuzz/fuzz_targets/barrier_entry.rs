//! The barrier's stored entries (store/src/barrier/): `[version][term][nonce][ciphertext+tag]`
//! under AES-256-GCM with the storage key as AAD, read back through a real `Barrier` over the
//! in-memory backend, with two key terms.
//!
//! Input: a mode byte, then the bytes. Checks: any bytes stored under a key are refused (never
//! a panic, never a value); a value written through the barrier reads back; with any one bit of
//! its stored entry flipped, or moved to another key, it is refused.
#![no_main]

use std::sync::{Arc, OnceLock};

use hush_store::barrier::{Barrier, BarrierError, KeyBytes};
use hush_store::storage::{Backend, MemoryBackend, Op};
use libfuzzer_sys::fuzz_target;

struct World {
    rt: tokio::runtime::Runtime,
    backend: Arc<MemoryBackend>,
    barrier: Barrier,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let backend = Arc::new(MemoryBackend::new());
        let barrier = Barrier::new(backend.clone());
        rt.block_on(async {
            let root = KeyBytes::random();
            barrier.initialize(&root).await.expect("initialize");
            // Term 1 holds one entry; new writes use term 2.
            barrier.put("old/term", b"v1".to_vec()).await.expect("put");
            barrier.rotate(&root).await.expect("rotate");
        });
        World {
            rt,
            backend,
            barrier,
        }
    })
}

async fn store_raw(backend: &MemoryBackend, key: &str, value: Vec<u8>) {
    backend
        .write(vec![Op::Put {
            key: key.into(),
            value,
        }])
        .await
        .expect("raw write");
}

fn refused(result: Result<Option<zeroize::Zeroizing<Vec<u8>>>, BarrierError>) -> bool {
    matches!(
        result,
        Err(BarrierError::Integrity { .. } | BarrierError::UnknownTerm { .. })
    )
}

fuzz_target!(|data: &[u8]| {
    let Some((mode, rest)) = data.split_first() else {
        return;
    };
    let w = world();
    w.rt.block_on(async {
        match mode % 3 {
            // Any bytes as a stored entry.
            0 => {
                store_raw(&w.backend, "raw/entry", rest.to_vec()).await;
                assert!(refused(w.barrier.get("raw/entry").await));
            }
            // A value of term 2, then one bit of its entry flipped.
            1 => {
                let [hi, lo, value @ ..] = rest else {
                    return;
                };
                w.barrier
                    .put("new/value", value.to_vec())
                    .await
                    .expect("put");
                let got = w.barrier.get("new/value").await.expect("get");
                assert_eq!(got.as_deref().map(Vec::as_slice), Some(value));
                let mut entry = w.backend.get("new/value").await.unwrap().unwrap();
                // Moved to another key: the AAD no longer matches.
                store_raw(&w.backend, "new/other", entry.clone()).await;
                assert!(refused(w.barrier.get("new/other").await));
                let bit = usize::from(u16::from_be_bytes([*hi, *lo])) % (entry.len() * 8);
                entry[bit / 8] ^= 1 << (bit % 8);
                store_raw(&w.backend, "new/value", entry).await;
                assert!(
                    refused(w.barrier.get("new/value").await),
                    "bit {bit} flipped and still read"
                );
            }
            // The term 1 entry with bits flipped (the mask in the first byte).
            _ => {
                let [pos, mask, ..] = rest else {
                    return;
                };
                let original = w.backend.get("old/term").await.unwrap().unwrap();
                let mut entry = original.clone();
                let i = usize::from(*pos) % entry.len();
                entry[i] ^= if *mask == 0 { 1 } else { *mask };
                store_raw(&w.backend, "old/term", entry).await;
                let result = w.barrier.get("old/term").await;
                store_raw(&w.backend, "old/term", original).await;
                assert!(refused(result), "byte {i} changed and still read");
            }
        }
    });
});
