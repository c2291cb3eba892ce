//! The shipped data-to-text files read as their README counts them (skipped where ../shared is absent).

use pelt_data::d2t::{read_e2e, read_webnlg, read_webnlg_dir};
use std::path::Path;

#[test]
fn the_shipped_e2e_and_webnlg_files_read_with_their_counts() {
    let d2t = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/d2t");
    if !d2t.is_dir() {
        eprintln!("{}: not here; skipped", d2t.display());
        return;
    }
    let refs = |r: &[pelt_data::d2t::Record]| r.iter().map(|x| x.references.len()).sum::<usize>();
    let dev = read_e2e(&d2t.join("e2e/devset.csv")).unwrap();
    assert_eq!((dev.len(), refs(&dev)), (547, 4672));
    let test = read_e2e(&d2t.join("e2e/testset_w_refs.csv")).unwrap();
    assert_eq!((test.len(), refs(&test)), (630, 4693));
    let bare = read_e2e(&d2t.join("e2e/testset.csv")).unwrap();
    assert_eq!((bare.len(), refs(&bare)), (630, 0));
    let train = read_webnlg_dir(&d2t.join("webnlg2017/train")).unwrap();
    assert_eq!((train.len(), refs(&train)), (6940, 18102));
    let dev = read_webnlg_dir(&d2t.join("webnlg2017/dev")).unwrap();
    assert_eq!((dev.len(), refs(&dev)), (872, 2268));
    let test = read_webnlg(&d2t.join("webnlg2017/test/testdata_with_lex.xml")).unwrap();
    assert_eq!((test.len(), refs(&test)), (1862, 4928));
}
