//! Vision-language and video-grounding data in their official layouts: easy-VQA (the PyPI package's
//! `data/` folder), VQAv2 (questions and annotations JSON over COCO image folders) with the official VQA
//! accuracy, Charades-STA (`sta_train.txt` / `sta_test.txt` over per-video feature files, `.npy`), and a
//! constructed temporal-grounding set built from an image-classification set (labelled constructed
//! wherever it is used).
//!
//! Every reader error names the file and the line or entry at fault and what was expected.

use crate::{vision::ImageSet, DataError, Result};
use rand::{prelude::IndexedRandom, Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

fn io(path: &Path) -> impl Fn(std::io::Error) -> DataError + '_ {
    move |source| DataError::Io { path: path.display().to_string(), source }
}

fn entry(path: &Path, at: impl Into<String>, message: impl Into<String>) -> DataError {
    DataError::Entry { path: path.display().to_string(), entry: at.into(), message: message.into() }
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    serde_json::from_str(&text).map_err(|e| DataError::Malformed {
        path: path.display().to_string(),
        line: e.line(),
        message: format!("not valid JSON: {e}"),
    })
}

/// One visual question: its text, the image it asks about (index into the split's images) and the
/// answers given (one for easy-VQA; VQAv2's ten annotators' answers), the first being the reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Question {
    /// The question.
    pub text: String,
    /// Index of its image in the split's [`ImageSet`].
    pub image: usize,
    /// The answers as given, normalised (lower case, trimmed); never empty.
    pub answers: Vec<String>,
}

/// One split of a VQA set: its images (in `ImageSet` layout, their `labels` the image ids) and questions.
#[derive(Debug, Clone, PartialEq)]
pub struct VqaSplit {
    /// The images, RGB at the reader's size.
    pub images: ImageSet,
    /// The questions.
    pub questions: Vec<Question>,
}

/// easy-VQA (the `easy-vqa` 1.0 package on PyPI, MIT licence): `answers.txt` (13 answers, one a line),
/// and per split `questions.json` (a list of `[question, answer, image_id]`) and `images/<id>.png` (64 × 64
/// RGB shapes). Returns (train, test) and the answer list.
pub fn read_easy_vqa(dir: &Path) -> Result<(VqaSplit, VqaSplit, Vec<String>)> {
    let answers_path = dir.join("answers.txt");
    let answers: Vec<String> = std::fs::read_to_string(&answers_path)
        .map_err(io(&answers_path))?
        .lines()
        .map(|l| l.trim().to_lowercase())
        .filter(|l| !l.is_empty())
        .collect();
    if answers.is_empty() {
        return Err(DataError::Malformed {
            path: answers_path.display().to_string(),
            line: 1,
            message: "expected one answer a line, found none".into(),
        });
    }
    let split = |name: &str| -> Result<VqaSplit> {
        let qpath = dir.join(name).join("questions.json");
        let value = read_json(&qpath)?;
        let rows = value.as_array().ok_or_else(|| entry(&qpath, "top level", "expected a list of questions"))?;
        let image_dir = dir.join(name).join("images");
        // Image ids in first-use order; each image read once.
        let mut index: HashMap<u64, usize> = HashMap::new();
        let mut ids: Vec<u64> = Vec::new();
        let mut questions = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let at = format!("entry {i}");
            let triple = row
                .as_array()
                .filter(|r| r.len() == 3)
                .ok_or_else(|| entry(&qpath, &at, format!("expected [question, answer, image_id], got {row}")))?;
            let (Some(text), Some(answer), Some(id)) = (triple[0].as_str(), triple[1].as_str(), triple[2].as_u64())
            else {
                return Err(entry(&qpath, &at, format!("expected [string, string, non-negative integer], got {row}")));
            };
            let answer = answer.trim().to_lowercase();
            if !answers.contains(&answer) {
                return Err(entry(&qpath, &at, format!("answer `{answer}` is not in {}", answers_path.display())));
            }
            let next = ids.len();
            let image = *index.entry(id).or_insert_with(|| {
                ids.push(id);
                next
            });
            questions.push(Question { text: text.trim().to_owned(), image, answers: vec![answer] });
        }
        let files: Vec<PathBuf> = ids.iter().map(|id| image_dir.join(format!("{id}.png"))).collect();
        let images = read_images(&files, &ids, 64, &qpath)?;
        Ok(VqaSplit { images, questions })
    };
    Ok((split("train")?, split("test")?, answers))
}

/// Reads `files` as RGB images resized to `size` × `size`; a missing or unreadable image is an error
/// naming it and the file that refers to it.
fn read_images(files: &[PathBuf], ids: &[u64], size: usize, referrer: &Path) -> Result<ImageSet> {
    let mut set = ImageSet { pixels: Vec::new(), labels: Vec::new(), channels: 3, size, max_value: 255 };
    for (f, &id) in files.iter().zip(ids) {
        let img = image::open(f).map_err(|e| {
            entry(referrer, format!("image {id}"), format!("{}: not a readable image: {e}", f.display()))
        })?;
        let rgb = img.to_rgb8();
        let rgb = if rgb.width() as usize == size && rgb.height() as usize == size {
            rgb
        } else {
            image::imageops::resize(&rgb, size as u32, size as u32, image::imageops::FilterType::Triangle)
        };
        for ch in 0..3 {
            set.pixels.extend(rgb.pixels().map(|p| p.0[ch]));
        }
        set.labels.push(id as usize);
    }
    Ok(set)
}

/// VQAv2 in its official layout: `questions` (`{"questions": [{"question_id", "image_id", "question"}]}`),
/// `annotations` (`{"annotations": [{"question_id", "image_id", "answers": [{"answer"}, …]}]}`, ten answers
/// each) and the COCO image folder, whose files are `COCO_<split>_<image_id, 12 digits>.jpg` (`split` as
/// in `val2014`). Images are resized to `size`. Every question must have its annotation and its image.
pub fn read_vqav2(questions: &Path, annotations: &Path, images: &Path, split: &str, size: usize) -> Result<VqaSplit> {
    let qs = read_json(questions)?;
    let anns = read_json(annotations)?;
    let qs = qs
        .get("questions")
        .and_then(|q| q.as_array())
        .ok_or_else(|| entry(questions, "top level", "expected an object with a `questions` list"))?;
    let anns = anns
        .get("annotations")
        .and_then(|a| a.as_array())
        .ok_or_else(|| entry(annotations, "top level", "expected an object with an `annotations` list"))?;
    let mut answers_of: HashMap<u64, Vec<String>> = HashMap::new();
    for (i, a) in anns.iter().enumerate() {
        let at = format!("annotation {i}");
        let qid =
            a.get("question_id").and_then(|v| v.as_u64()).ok_or_else(|| entry(annotations, &at, "no `question_id`"))?;
        let given: Vec<String> = a
            .get("answers")
            .and_then(|v| v.as_array())
            .ok_or_else(|| entry(annotations, &at, "no `answers` list"))?
            .iter()
            .filter_map(|x| x.get("answer").and_then(|s| s.as_str()).map(normalise_answer))
            .collect();
        if given.is_empty() {
            return Err(entry(annotations, &at, format!("question {qid} has no answer")));
        }
        answers_of.insert(qid, given);
    }
    let mut index: HashMap<u64, usize> = HashMap::new();
    let mut ids = Vec::new();
    let mut out = Vec::with_capacity(qs.len());
    for (i, q) in qs.iter().enumerate() {
        let at = format!("question {i}");
        let field = |k: &str| q.get(k).ok_or_else(|| entry(questions, &at, format!("no `{k}`")));
        let qid = field("question_id")?.as_u64().ok_or_else(|| entry(questions, &at, "`question_id` is not an id"))?;
        let image_id = field("image_id")?.as_u64().ok_or_else(|| entry(questions, &at, "`image_id` is not an id"))?;
        let text = field("question")?.as_str().ok_or_else(|| entry(questions, &at, "`question` is not text"))?;
        let answers = answers_of.remove(&qid).ok_or_else(|| {
            entry(questions, &at, format!("question {qid} has no annotation in {}", annotations.display()))
        })?;
        let next = ids.len();
        let image = *index.entry(image_id).or_insert_with(|| {
            ids.push(image_id);
            next
        });
        out.push(Question { text: text.trim().to_owned(), image, answers });
    }
    let files: Vec<PathBuf> = ids.iter().map(|id| images.join(format!("COCO_{split}_{id:012}.jpg"))).collect();
    let images = read_images(&files, &ids, size, questions)?;
    Ok(VqaSplit { images, questions: out })
}

/// The answer normalisation applied before matching: lower case, surrounding space and a final period
/// removed, inner runs of space collapsed (the official evaluation's further punctuation and article
/// rules are not applied).
pub fn normalise_answer(a: &str) -> String {
    let a = a.trim().to_lowercase();
    let a = a.strip_suffix('.').unwrap_or(&a);
    a.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The official VQA accuracy of `predicted` against the annotators' `answers`: the mean, over the ten
/// leave-one-annotator-out subsets, of min(1, matches in the subset / 3); with fewer than ten answers the
/// subsets are one per answer all the same.
pub fn vqa_accuracy(predicted: &str, answers: &[String]) -> f64 {
    let p = normalise_answer(predicted);
    let matches = answers.iter().filter(|a| **a == p).count();
    if answers.is_empty() {
        return 0.0;
    }
    let total: f64 = answers
        .iter()
        .map(|a| {
            let others = matches - usize::from(*a == p);
            (others as f64 / 3.0).min(1.0)
        })
        .sum();
    total / answers.len() as f64
}

/// One moment of Charades-STA: the video, the span the query describes (seconds) and the query.
#[derive(Debug, Clone, PartialEq)]
pub struct Moment {
    /// Video id (its feature file is `<video>.npy`).
    pub video: String,
    /// Start of the span, seconds.
    pub start: f64,
    /// End of the span, seconds.
    pub end: f64,
    /// The sentence.
    pub query: String,
}

/// Reads a Charades-STA annotation file (`sta_train.txt`, `sta_test.txt`: `<video> <start> <end>##<sentence>`
/// a line) and checks that each video has its feature file `<features>/<video>.npy`.
pub fn read_charades_sta(path: &Path, features: &Path) -> Result<Vec<Moment>> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    let bad = |line: usize, message: String| DataError::Malformed { path: path.display().to_string(), line, message };
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        if raw.trim().is_empty() {
            continue;
        }
        let (head, query) = raw
            .split_once("##")
            .ok_or_else(|| bad(line, "expected `<video> <start> <end>##<sentence>` (no `##`)".into()))?;
        let parts: Vec<&str> = head.split_whitespace().collect();
        let [video, start, end] = parts[..] else {
            return Err(bad(line, format!("expected `<video> <start> <end>` before `##`, got `{head}`")));
        };
        let secs = |s: &str, what: &str| {
            s.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .ok_or_else(|| bad(line, format!("{what} `{s}` is not a non-negative number of seconds")))
        };
        let (start, end) = (secs(start, "start")?, secs(end, "end")?);
        if end <= start {
            return Err(bad(line, format!("end {end} is not after start {start}")));
        }
        let query = query.trim();
        if query.is_empty() {
            return Err(bad(line, "the sentence after `##` is empty".into()));
        }
        let file = features.join(format!("{video}.npy"));
        if !file.is_file() {
            return Err(bad(line, format!("no feature file {} for video `{video}`", file.display())));
        }
        out.push(Moment { video: video.to_owned(), start, end, query: query.to_owned() });
    }
    if out.is_empty() {
        return Err(bad(1, "no moments".into()));
    }
    Ok(out)
}

/// A video's features from its `.npy` file: (frames, dimension, values row-major). float32 or float64,
/// two-dimensional, C order.
pub fn read_features(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let bad = |message: String| entry(path, "array", message);
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| bad(format!("not a .npy file: {e}")))?;
    let shape = npy.shape().to_vec();
    let [frames, dim] = shape[..] else {
        return Err(bad(format!("expected a two-dimensional array (frames, dimension), got shape {shape:?}")));
    };
    if npy.order() != npyz::Order::C {
        return Err(bad("expected C order (fortran_order False)".into()));
    }
    let values: Vec<f32> = match npy.dtype() {
        npyz::DType::Plain(t) if t.to_string() == "<f4" => {
            npy.into_vec::<f32>().map_err(|e| bad(format!("unreadable float32 data: {e}")))?
        }
        npyz::DType::Plain(t) if t.to_string() == "<f8" => npy
            .into_vec::<f64>()
            .map_err(|e| bad(format!("unreadable float64 data: {e}")))?
            .into_iter()
            .map(|v| v as f32)
            .collect(),
        other => return Err(bad(format!("expected little-endian float32 or float64, got {}", other.descr()))),
    };
    Ok((frames as usize, dim as usize, values))
}

/// One video of the constructed grounding set: frames (indices into the image set it was built from),
/// the queried class, its span of frames [start, end) and the query.
#[derive(Debug, Clone, PartialEq)]
pub struct ConstructedVideo {
    /// Frame i is image `frames[i]` of the source set.
    pub frames: Vec<usize>,
    /// The queried class.
    pub class: usize,
    /// First frame of the span.
    pub start: usize,
    /// One past its last frame.
    pub end: usize,
    /// "when is a sandal shown?"
    pub query: String,
}

/// A CONSTRUCTED temporal-grounding set, not a real one: `videos` sequences of `length` frames drawn
/// from `images` (an image-classification set, e.g. Fashion-MNIST), in each of which one class, named
/// by the query "when is a <class> shown?", fills one contiguous span of 2 to length / 2 frames and
/// appears nowhere else; the other frames show other classes. Deterministic per seed.
pub fn constructed_grounding(
    images: &ImageSet,
    names: &[&str],
    videos: usize,
    length: usize,
    seed: u64,
) -> Result<Vec<ConstructedVideo>> {
    let classes = names.len();
    let mut by_class: Vec<Vec<usize>> = vec![Vec::new(); classes];
    for (i, &l) in images.labels.iter().enumerate() {
        if l < classes {
            by_class[l].push(i);
        }
    }
    if length < 4 || classes < 2 || by_class.iter().any(Vec::is_empty) {
        return Err(DataError::Entry {
            path: "constructed grounding set".into(),
            entry: format!("{classes} classes, {length} frames"),
            message: "needs at least 2 classes, each with an image, and videos of at least 4 frames".into(),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut out = Vec::with_capacity(videos);
    for _ in 0..videos {
        let class = rng.random_range(0..classes);
        let span = rng.random_range(2..=length / 2);
        let start = rng.random_range(0..=length - span);
        let frames = (0..length)
            .map(|t| {
                let c = if (start..start + span).contains(&t) {
                    class
                } else {
                    // Another class: shift by 1..classes so the queried one never appears outside its span.
                    (class + rng.random_range(1..classes)) % classes
                };
                *by_class[c].choose(&mut rng).expect("every class has an image")
            })
            .collect();
        out.push(ConstructedVideo {
            frames,
            class,
            start,
            end: start + span,
            query: format!("when is {} {} shown?", article(names[class]), names[class]),
        });
    }
    Ok(out)
}

fn article(noun: &str) -> &'static str {
    if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// easy-VQA's shape colours and shapes (the words its questions and answers use).
pub const EASY_VQA_COLOURS: [&str; 8] = ["red", "green", "blue", "black", "gray", "teal", "brown", "yellow"];
/// easy-VQA's shapes.
pub const EASY_VQA_SHAPES: [&str; 3] = ["circle", "rectangle", "triangle"];

/// CONSTRUCTED captions of easy-VQA's images ("a blue rectangle"), read off each image's questions:
/// easy-VQA draws one shape per image and ships no captions, but its questions name the shape's colour
/// and kind. A "what" question's answer and the colour or shape it names are the image's ("what is the
/// blue shape?" → rectangle: blue, rectangle); a yes / no question names them when it affirms them
/// ("is there a red shape?" yes, "is no circle present?" no). `None` for an image whose questions do not
/// give both, or give two colours or two shapes (never seen in the package's data).
pub fn easy_vqa_captions(questions: &[Question], images: usize) -> Vec<Option<String>> {
    let mut found: Vec<(Vec<&str>, Vec<&str>)> = vec![(Vec::new(), Vec::new()); images];
    for q in questions {
        let Some((colours, shapes)) = found.get_mut(q.image) else { continue };
        let words: Vec<&str> = q.text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).collect();
        let answer = q.answers[0].as_str();
        let affirms = match answer {
            "yes" | "no" => (answer == "yes") != words.iter().any(|w| *w == "not" || *w == "no"),
            // A "what" question presupposes the attributes it names, and its answer is one.
            _ => true,
        };
        if !affirms {
            continue;
        }
        for w in words.iter().copied().chain((answer != "yes" && answer != "no").then_some(answer)) {
            if let Some(c) = EASY_VQA_COLOURS.iter().find(|c| **c == w) {
                if !colours.contains(c) {
                    colours.push(c);
                }
            }
            if let Some(s) = EASY_VQA_SHAPES.iter().find(|s| **s == w) {
                if !shapes.contains(s) {
                    shapes.push(s);
                }
            }
        }
    }
    found
        .into_iter()
        .map(|(c, s)| match (&c[..], &s[..]) {
            ([colour], [shape]) => Some(format!("a {colour} {shape}")),
            _ => None,
        })
        .collect()
}

/// Temporal IoU of two spans [a0, a1) and [b0, b1).
pub fn temporal_iou(a: (f64, f64), b: (f64, f64)) -> f64 {
    let inter = (a.1.min(b.1) - a.0.max(b.0)).max(0.0);
    let union = (a.1.max(b.1) - a.0.min(b.0)).max(1e-12);
    inter / union
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, rgb: [u8; 3]) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(64, 64, image::Rgb(rgb)).save(path).unwrap();
    }

    #[test]
    fn easy_vqa_captions_follow_the_questions_that_affirm_an_attribute() {
        let q = |text: &str, answer: &str, image: usize| Question {
            text: text.into(),
            image,
            answers: vec![answer.into()],
        };
        let questions = [
            // Image 0: a "what" question names both; denials name nothing.
            q("what is the blue shape?", "rectangle", 0),
            q("is there a triangle in the image?", "no", 0),
            q("is there not a red shape?", "yes", 0),
            // Image 1: colour from an affirmed yes / no, shape from a negated denial.
            q("does the image contain a teal shape?", "yes", 1),
            q("is no circle present?", "no", 1),
            q("is a green shape present?", "no", 1),
            // Image 2: only the colour is known.
            q("what color is the shape?", "gray", 2),
            // Image 3: two colours affirmed (not in the package): no caption rather than a guess.
            q("is there a red shape?", "yes", 3),
            q("is there a blue shape?", "yes", 3),
            q("what shape is present?", "circle", 3),
        ];
        let captions = easy_vqa_captions(&questions, 5);
        assert_eq!(captions[0].as_deref(), Some("a blue rectangle"));
        assert_eq!(captions[1].as_deref(), Some("a teal circle"));
        assert_eq!(captions[2], None);
        assert_eq!(captions[3], None);
        assert_eq!(captions[4], None, "an image without questions");
    }

    #[test]
    fn easy_vqa_reads_its_package_layout_and_names_bad_entries() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("answers.txt"), "circle\nred\nyes\nno\n").unwrap();
        for split in ["train", "test"] {
            png(&d.join(split).join("images/0.png"), [255, 0, 0]);
            png(&d.join(split).join("images/7.png"), [0, 0, 255]);
            std::fs::write(
                d.join(split).join("questions.json"),
                r#"[["what shape is it?", "circle", 7], ["is it red?", "Yes", 0], ["is it red?", "no", 7]]"#,
            )
            .unwrap();
        }
        let (train, test, answers) = read_easy_vqa(d).unwrap();
        assert_eq!(answers, ["circle", "red", "yes", "no"]);
        assert_eq!((train.questions.len(), train.images.len(), test.images.len()), (3, 2, 2));
        // Images in first-use order: id 7 is image 0, id 0 is image 1; answers lower-cased.
        assert_eq!(train.questions[1], Question { text: "is it red?".into(), image: 1, answers: vec!["yes".into()] });
        assert_eq!(train.images.labels, [7, 0]);
        assert_eq!(&train.images.pixels[..1], &[0]);
        assert_eq!(train.images.pixels[64 * 64 * 3 * 2 - 1], 0);
        // An answer outside answers.txt, a pair instead of a triple, a missing image.
        let q = d.join("train/questions.json");
        for (text, want) in [
            (r#"[["q?", "square", 0]]"#, "entry 0: answer `square` is not in"),
            (r#"[["q?", "circle", 0], ["q?", "circle"]]"#, "entry 1: expected [question, answer, image_id]"),
            (r#"[["q?", "circle", 3]]"#, "image 3:"),
        ] {
            std::fs::write(&q, text).unwrap();
            let err = read_easy_vqa(d).unwrap_err().to_string();
            assert!(err.contains("questions.json") && err.contains(want), "{err}");
        }
    }

    #[test]
    fn vqav2_joins_questions_annotations_and_coco_images() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let img = |id: u64| d.join(format!("val2014/COCO_val2014_{id:012}.jpg"));
        std::fs::create_dir_all(d.join("val2014")).unwrap();
        for id in [42, 9] {
            image::RgbImage::from_pixel(20, 10, image::Rgb([10, 20, 30])).save(img(id)).unwrap();
        }
        let questions = d.join("q.json");
        let annotations = d.join("a.json");
        std::fs::write(
            &questions,
            r#"{"questions": [{"question_id": 1, "image_id": 42, "question": "What color? "},
                               {"question_id": 2, "image_id": 9, "question": "How many?"}]}"#,
        )
        .unwrap();
        let ten = |a: &str| format!("[{}]", vec![format!(r#"{{"answer": "{a}"}}"#); 10].join(","));
        std::fs::write(
            &annotations,
            format!(
                r#"{{"annotations": [{{"question_id": 2, "image_id": 9, "answers": {}}},
                                    {{"question_id": 1, "image_id": 42, "answers": {}}}]}}"#,
                ten("2"),
                ten("Blue.")
            ),
        )
        .unwrap();
        let split = read_vqav2(&questions, &annotations, &d.join("val2014"), "val2014", 16).unwrap();
        assert_eq!(split.questions[0].answers, vec!["blue"; 10]);
        assert_eq!((split.images.len(), split.images.size, split.images.labels.clone()), (2, 16, vec![42, 9]));
        // A question without its annotation is named.
        std::fs::write(&annotations, r#"{"annotations": []}"#).unwrap();
        let err = read_vqav2(&questions, &annotations, &d.join("val2014"), "val2014", 16).unwrap_err().to_string();
        assert!(err.contains("q.json: question 0: question 1 has no annotation"), "{err}");
    }

    #[test]
    fn vqa_accuracy_is_the_leave_one_out_mean() {
        let answers = |n: usize| -> Vec<String> {
            (0..10).map(|i| if i < n { "yes".to_owned() } else { "no".to_owned() }).collect()
        };
        // Three or more matching annotators: full credit in every subset where ≥ 3 remain.
        assert_eq!(vqa_accuracy("yes", &answers(10)), 1.0);
        assert_eq!(vqa_accuracy("Yes.", &answers(4)), 1.0);
        // Three matches: the 3 subsets that drop a match give 2/3, the other 7 give 1.
        assert!((vqa_accuracy("yes", &answers(3)) - (3.0 * 2.0 / 3.0 + 7.0) / 10.0).abs() < 1e-12);
        // One match: the dropped one gives 0, the other 9 give 1/3.
        assert!((vqa_accuracy("yes", &answers(1)) - 9.0 / 30.0).abs() < 1e-12);
        assert_eq!(vqa_accuracy("maybe", &answers(5)), 0.0);
    }

    #[test]
    fn charades_sta_lines_are_checked_against_their_feature_files() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("features")).unwrap();
        // A (3, 2) float32 array, C order, written in the .npy v1.0 layout.
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }";
        let mut h = header.to_owned();
        while !(10 + h.len() + 1).is_multiple_of(64) {
            h.push(' ');
        }
        h.push('\n');
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend((h.len() as u16).to_le_bytes());
        npy.extend(h.as_bytes());
        for v in [0.5f32, 1.0, 1.5, 2.0, 2.5, 3.0] {
            npy.extend(v.to_le_bytes());
        }
        std::fs::write(d.join("features/AO8RW.npy"), &npy).unwrap();
        let sta = d.join("sta_test.txt");
        std::fs::write(&sta, "AO8RW 0.0 6.9##a person is putting a book on a shelf.\n").unwrap();
        let moments = read_charades_sta(&sta, &d.join("features")).unwrap();
        assert_eq!(moments[0].video, "AO8RW");
        assert_eq!((moments[0].start, moments[0].end), (0.0, 6.9));
        let (frames, dim, values) = read_features(&d.join("features/AO8RW.npy")).unwrap();
        assert_eq!((frames, dim, values[5]), (3, 2, 3.0));
        for (line, want) in [
            ("AO8RW 0.0 6.9 a person sits.", "no `##`"),
            ("AO8RW 6.9##a person sits.", "expected `<video> <start> <end>`"),
            ("AO8RW 3 two##a person sits.", "end `two` is not a non-negative number"),
            ("AO8RW 5 2##a person sits.", "end 2 is not after start 5"),
            ("ZZZZZ 0 2##a person sits.", "no feature file"),
        ] {
            std::fs::write(&sta, format!("AO8RW 0.0 6.9##fine.\n{line}\n")).unwrap();
            let err = read_charades_sta(&sta, &d.join("features")).unwrap_err().to_string();
            assert!(err.contains("sta_test.txt:2:") && err.contains(want), "{line}: {err}");
        }
    }

    #[test]
    fn the_constructed_grounding_set_is_deterministic_and_its_spans_hold() {
        let labels: Vec<usize> = (0..40).map(|i| i % 4).collect();
        let images = ImageSet { pixels: vec![0; 40], labels, channels: 1, size: 1, max_value: 255 };
        let names = ["t-shirt", "sandal", "ankle boot", "bag"];
        let a = constructed_grounding(&images, &names, 50, 12, 3).unwrap();
        assert_eq!(a, constructed_grounding(&images, &names, 50, 12, 3).unwrap());
        assert_ne!(a, constructed_grounding(&images, &names, 50, 12, 4).unwrap());
        for v in &a {
            assert_eq!(v.frames.len(), 12);
            assert!(v.end - v.start >= 2 && v.end - v.start <= 6);
            for (t, &f) in v.frames.iter().enumerate() {
                let shown = images.labels[f] == v.class;
                assert_eq!(shown, (v.start..v.end).contains(&t), "{v:?}");
            }
            assert_eq!(v.query, format!("when is {} {} shown?", article(names[v.class]), names[v.class]));
        }
        assert!(a.iter().any(|v| v.query == "when is an ankle boot shown?"));
        assert!((temporal_iou((0.0, 4.0), (2.0, 6.0)) - 1.0 / 3.0).abs() < 1e-12);
    }
}
