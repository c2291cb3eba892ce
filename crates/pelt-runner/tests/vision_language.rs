//! The vision-language family end to end on VQAv2's official layout: a tiny release made in the test
//! (questions and annotations JSON over COCO-named JPEGs, ten answers a question) trains LoRA on the
//! shipped MiniLM; the record holds the official accuracy, its yes / no and other parts, and the split
//! sizes the protocol gives (every tenth training image the dev set; questions outside the answer set
//! train nothing); a folder missing a file is refused before training.

mod common;
use common::pelt;
use std::path::Path;

/// Writes a tiny VQAv2 release: `train` images (ids 1…) for train2014 and `val` for val2014, each a
/// plain red or blue square with two questions ("what color is the square?" and "is the square red?").
/// The second training image's colour question has a rare answer ("crimson").
fn write_release(dir: &Path, train: u64, val: u64) {
    for (split, n) in [("train2014", train), ("val2014", val)] {
        std::fs::create_dir_all(dir.join(split)).unwrap();
        let (mut questions, mut annotations) = (Vec::new(), Vec::new());
        for id in 1..=n {
            let red = id % 2 == 1;
            let rgb = if red { [220, 20, 20] } else { [20, 20, 220] };
            image::RgbImage::from_pixel(40, 40, image::Rgb(rgb))
                .save(dir.join(split).join(format!("COCO_{split}_{id:012}.jpg")))
                .unwrap();
            let colour = if split == "train2014" && id == 2 {
                "crimson"
            } else if red {
                "red"
            } else {
                "blue"
            };
            let is_red = if red { "yes" } else { "no" };
            for (k, (text, answer)) in
                [("what color is the square?", colour), ("is the square red?", is_red)].iter().enumerate()
            {
                let qid = id * 10 + k as u64;
                questions.push(serde_json::json!({"question_id": qid, "image_id": id, "question": text}));
                // Seven annotators agree, three give another answer.
                let answers: Vec<_> = (0..10)
                    .map(|a| serde_json::json!({"answer": if a < 7 { *answer } else { "maybe" }, "answer_id": a + 1}))
                    .collect();
                annotations.push(serde_json::json!({"question_id": qid, "image_id": id, "answers": answers}));
            }
        }
        let q = serde_json::json!({ "questions": questions });
        let a = serde_json::json!({ "annotations": annotations });
        std::fs::write(dir.join(format!("v2_OpenEnded_mscoco_{split}_questions.json")), q.to_string()).unwrap();
        std::fs::write(dir.join(format!("v2_mscoco_{split}_annotations.json")), a.to_string()).unwrap();
    }
}

#[test]
fn vqav2_in_its_release_layout_trains_and_is_scored_with_the_official_accuracy() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write_release(&d.join("vqa"), 20, 4);
    let minilm = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../assets/minilm");
    let text = format!(
        "name: tiny-vqa\nbackbone: {}\ntasks: [vqav2]\ndata_sizes: [all]\nseeds: [1]\n\
         vl: {{patch: 8, vqav2: {{dir: vqa, image_size: 32, answers: 3}}}}\n\
         training:\n  epochs: 2\n  batch_size: 8\n  eval_every: 4\n  max_len: 16\n\
         methods:\n  - method: lora\n    lr: 1.0e-3\n",
        minilm.display()
    );
    std::fs::write(d.join("x.yaml"), &text).unwrap();
    let (ok, out) = pelt(&["sweep", "x.yaml", "--results", "out", "--no-report"], d);
    assert!(ok, "{out}");
    let records: Vec<serde_json::Value> = std::fs::read_dir(d.join("out/tiny-vqa/records"))
        .unwrap()
        .map(|e| serde_json::from_str(&std::fs::read_to_string(e.unwrap().path()).unwrap()).unwrap())
        .collect();
    let [r] = &records[..] else { panic!("one record expected, got {}", records.len()) };
    assert_eq!(r["status"], "ok", "{r}");
    // 20 training images: images 1 and 11 (indices 0 and 10) hold the dev set's 4 questions. The answer
    // set is the 3 most frequent most-given answers, ties alphabetical: no, red, yes (10 each; blue 9,
    // crimson 1). Of the other 18 images' 36 questions, the 10 blue images' colour questions (one of them
    // "crimson") are outside it and train nothing: 26. Test: val2014's 4 images, 8 questions.
    assert_eq!((r["train_examples"].as_u64(), r["dev_examples"].as_u64()), (Some(26), Some(4)), "{r}");
    assert_eq!(r["test_examples"].as_u64(), Some(8), "{r}");
    let m = &r["metrics"];
    for key in ["accuracy", "accuracy_yes_no", "accuracy_other"] {
        let v = m[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=100.0).contains(&v), "{key} = {v}");
    }
    // Half the test questions are yes / no: the two parts average to the whole. The blue squares'
    // colour question has no answer in the set, so the other part is at most 50.
    let whole = m["accuracy"].as_f64().unwrap();
    let parts = (m["accuracy_yes_no"].as_f64().unwrap() + m["accuracy_other"].as_f64().unwrap()) / 2.0;
    assert!((whole - parts).abs() < 1e-6, "{whole} vs {parts}");
    assert!(m["accuracy_other"].as_f64().unwrap() <= 50.0 + 1e-9, "{m}");

    // A release without its validation annotations is refused before anything trains.
    std::fs::remove_file(d.join("vqa/v2_mscoco_val2014_annotations.json")).unwrap();
    let (ok, out) = pelt(&["sweep", "x.yaml", "--results", "out2", "--no-report"], d);
    assert!(!ok && out.contains("x.yaml") && out.contains("field `vl`: vqav2: "), "{out}");
    assert!(out.contains("v2_mscoco_val2014_annotations.json: no such file"), "{out}");
    assert!(!d.join("out2/tiny-vqa/records").exists());
}
