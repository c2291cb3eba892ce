//! Property tests of the record reader: a record file with arbitrary bytes, or a valid record with a
//! byte flipped, inserted or cut, reads as a record or is left out by name, never a panic.

use pelt_records::{test_record, Store};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_record_file_reads_or_is_named(edit in 0usize..4, at in any::<prop::sample::Index>(), b in any::<u8>(),
                                         noise in proptest::collection::vec(any::<u8>(), 0..200)) {
        let valid = serde_json::to_vec_pretty(&test_record("rte", "lora", 1)).unwrap();
        let bytes = match edit {
            0 => noise,
            1 => { let mut v = valid.clone(); let i = at.index(v.len()); v[i] ^= b | 1; v }
            2 => { let mut v = valid.clone(); let i = at.index(v.len()); v.insert(i, b); v }
            _ => valid[..at.index(valid.len())].to_vec(),
        };
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.save(&test_record("rte", "lora", 2)).unwrap();
        std::fs::write(dir.path().join("records/x.json"), &bytes).unwrap();
        let loaded = store.load().unwrap();
        prop_assert_eq!(loaded.records.len() + loaded.unreadable.len(), 2);
        prop_assert!(loaded.records.iter().any(|r| r.seed == 2));
    }
}
