//! Data-to-text sets in their official layouts: E2E (CSV `mr,ref` — `MR` in the bare test file — one row per reference, grouped here
//! by MR), WebNLG (the challenge's XML: `<entry>` with `<mtriple>` triples and `<lex>` references) and
//! WikiBio (`.box` infobox lines of `field_i:token` and a parallel summary file), each record a table or
//! a triple set with its references. [`linearise`] writes the encoder's input.
//!
//! Linearisation (documented, one rule per kind): a table as `attribute: value` pairs joined by ` | `
//! (`name: Alimentum | area: city centre`); a triple set as `subject ; property ; object` joined by ` | `,
//! underscores read as spaces and camelCase properties split into words (`birthPlace` → `birth place`),
//! as PCG and WebNLG baselines present DBpedia identifiers to a text model.

use crate::DataError;
use std::path::{Path, PathBuf};

/// What a record describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Attribute–value pairs, in order (E2E's MR, a WikiBio infobox).
    Table(Vec<(String, String)>),
    /// (subject, property, object) triples (WebNLG).
    Triples(Vec<(String, String, String)>),
}

/// One data-to-text example: its input and every reference text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// An id: E2E's MR text, WebNLG's `category/eid`, WikiBio's line number.
    pub id: String,
    /// The table or triples.
    pub input: Input,
    /// The reference texts (none in a test file without references).
    pub references: Vec<String>,
}

fn malformed(path: &Path, line: usize, message: String) -> DataError {
    DataError::Malformed { path: path.display().to_string(), line, message }
}

/// Parses an E2E MR, `name[Alimentum], area[city centre]`.
pub fn parse_mr(mr: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    let mut rest = mr.trim();
    while !rest.is_empty() {
        let open = rest.find('[').ok_or_else(|| format!("`{rest}`: expected attribute[value]"))?;
        let close = rest[open..].find(']').map(|c| open + c).ok_or_else(|| format!("`{rest}`: no closing ]"))?;
        let attr = rest[..open].trim();
        if attr.is_empty() {
            return Err(format!("`{rest}`: an attribute name before ["));
        }
        pairs.push((attr.to_owned(), rest[open + 1..close].trim().to_owned()));
        rest = rest[close + 1..].trim_start();
        rest = rest.strip_prefix(',').unwrap_or(rest).trim_start();
    }
    if pairs.is_empty() {
        return Err("an empty MR".into());
    }
    Ok(pairs)
}

/// Reads an E2E CSV (`mr,ref`, or `mr` alone in the reference-less test file), one record per distinct
/// MR in first-seen order with all its references.
pub fn read_e2e(path: &Path) -> Result<Vec<Record>, DataError> {
    let io = |source: std::io::Error| DataError::Io { path: path.display().to_string(), source };
    let file = std::fs::File::open(path).map_err(io)?;
    let mut reader = csv::ReaderBuilder::new().has_headers(true).from_reader(file);
    let headers = reader.headers().map_err(|e| malformed(path, 1, e.to_string()))?.clone();
    // The release's test file says `MR`, its dev file `mr`.
    let column = |name: &str| headers.iter().position(|h| h.trim_start_matches('\u{feff}').eq_ignore_ascii_case(name));
    let mr_col =
        column("mr").ok_or_else(|| malformed(path, 1, format!("header {headers:?}: expected a `mr` column")))?;
    let ref_col = column("ref");
    let mut records: Vec<Record> = Vec::new();
    let mut index = std::collections::HashMap::new();
    for (i, row) in reader.records().enumerate() {
        let line = i + 2;
        let row = row.map_err(|e| malformed(path, line, e.to_string()))?;
        let mr = row.get(mr_col).ok_or_else(|| malformed(path, line, "no `mr` field".into()))?;
        let at = match index.get(mr) {
            Some(&at) => at,
            None => {
                let table = parse_mr(mr).map_err(|m| malformed(path, line, format!("field `mr`: {m}")))?;
                records.push(Record { id: mr.to_owned(), input: Input::Table(table), references: Vec::new() });
                index.insert(mr.to_owned(), records.len() - 1);
                records.len() - 1
            }
        };
        if let Some(c) = ref_col {
            let text = row.get(c).ok_or_else(|| malformed(path, line, "no `ref` field".into()))?;
            if text.trim().is_empty() {
                return Err(malformed(path, line, "field `ref`: empty".into()));
            }
            records[at].references.push(text.to_owned());
        }
    }
    Ok(records)
}

/// Reads one WebNLG XML file.
pub fn read_webnlg(path: &Path) -> Result<Vec<Record>, DataError> {
    use quick_xml::events::Event;
    let text =
        std::fs::read_to_string(path).map_err(|source| DataError::Io { path: path.display().to_string(), source })?;
    let line_at = |pos: u64| text[..(pos as usize).min(text.len())].matches('\n').count() + 1;
    let mut reader = quick_xml::Reader::from_str(&text);
    let bad = |pos: u64, m: String| malformed(path, line_at(pos), m);
    let mut records = Vec::new();
    let (mut id, mut triples, mut refs) = (String::new(), Vec::new(), Vec::new());
    // The first entry without a <lex>, by id and line: refused unless the whole file has none (the
    // challenge's bare test file).
    let mut unreferenced: Option<(String, usize)> = None;
    // The element whose text is being read (`mtriple` or `lex`) and the text so far.
    let mut reading: Option<(String, String)> = None;
    loop {
        let pos = reader.buffer_position();
        let event = reader.read_event().map_err(|e| bad(pos, format!("not well-formed XML: {e}")))?;
        match event {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match name.as_str() {
                    "entry" => {
                        let attr = |k: &str| -> Result<String, DataError> {
                            let a = e.try_get_attribute(k).map_err(|x| bad(pos, x.to_string()))?;
                            let a = a.ok_or_else(|| bad(pos, format!("<entry> without `{k}`")))?;
                            Ok(a.unescape_value().map_err(|x| bad(pos, x.to_string()))?.into_owned())
                        };
                        id = format!("{}/{}", attr("category")?, attr("eid")?);
                        triples.clear();
                        refs.clear();
                    }
                    "mtriple" | "lex" => reading = Some((name, String::new())),
                    _ => {}
                }
            }
            Event::Text(t) => {
                if let Some((_, buf)) = reading.as_mut() {
                    buf.push_str(&t.decode().map_err(|e| bad(pos, e.to_string()))?);
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, buf)) = reading.as_mut() {
                    let name = r.decode().map_err(|e| bad(pos, e.to_string()))?.into_owned();
                    let ch = match name.as_str() {
                        "amp" => Some('&'),
                        "lt" => Some('<'),
                        "gt" => Some('>'),
                        "quot" => Some('"'),
                        "apos" => Some('\''),
                        _ => r.resolve_char_ref().map_err(|e| bad(pos, e.to_string()))?,
                    };
                    buf.push(ch.ok_or_else(|| bad(pos, format!("unknown entity `&{name};`")))?);
                }
            }
            Event::End(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if let Some((open, buf)) = reading.take().filter(|(open, _)| *open == name) {
                    let value = buf.trim().to_owned();
                    if open == "mtriple" {
                        let parts: Vec<&str> = value.split(" | ").collect();
                        let [s, p, o] = parts[..] else {
                            return Err(bad(pos, format!("<mtriple> `{value}`: expected subject | property | object")));
                        };
                        triples.push((s.to_owned(), p.to_owned(), o.to_owned()));
                    } else if !value.is_empty() {
                        refs.push(value);
                    }
                } else if name == "entry" {
                    if triples.is_empty() {
                        return Err(bad(pos, format!("entry {id}: no <mtriple>")));
                    }
                    if refs.is_empty() && unreferenced.is_none() {
                        unreferenced = Some((id.clone(), line_at(pos)));
                    }
                    records.push(Record {
                        id: id.clone(),
                        input: Input::Triples(std::mem::take(&mut triples)),
                        references: std::mem::take(&mut refs),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if let Some((id, line)) = unreferenced.filter(|_| records.iter().any(|r| !r.references.is_empty())) {
        return Err(malformed(
            path,
            line,
            format!("entry {id}: no <lex> reference, where the file's other entries have them"),
        ));
    }
    Ok(records)
}

/// Reads every WebNLG XML file under `dir` (train and dev are split into `1triples/` … `7triples/`),
/// files in path order.
pub fn read_webnlg_dir(dir: &Path) -> Result<Vec<Record>, DataError> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for e in std::fs::read_dir(dir)? {
            let p = e?.path();
            if p.is_dir() {
                walk(&p, out)?;
            } else if p.extension().is_some_and(|x| x == "xml") {
                out.push(p);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files).map_err(|source| DataError::Io { path: dir.display().to_string(), source })?;
    files.sort();
    let mut out = Vec::new();
    for f in files {
        out.extend(read_webnlg(&f)?);
    }
    Ok(out)
}

/// Reads WikiBio's layout: `box` has one infobox per line, tab-separated `field_i:token` items
/// (`<none>` tokens skipped; a field's tokens joined in order), `summary` the reference of each line.
pub fn read_wikibio(box_path: &Path, summary_path: &Path) -> Result<Vec<Record>, DataError> {
    let read =
        |p: &Path| std::fs::read_to_string(p).map_err(|source| DataError::Io { path: p.display().to_string(), source });
    let (boxes, summaries) = (read(box_path)?, read(summary_path)?);
    let summaries: Vec<&str> = summaries.lines().collect();
    let mut out = Vec::new();
    for (i, line) in boxes.lines().enumerate() {
        let mut table: Vec<(String, String)> = Vec::new();
        for item in line.split('\t').filter(|s| !s.is_empty()) {
            let (key, token) = item
                .split_once(':')
                .ok_or_else(|| malformed(box_path, i + 1, format!("`{item}`: expected field_i:token")))?;
            if token == "<none>" {
                continue;
            }
            // `name_1`, `name_2`: the field is what precedes the position suffix.
            let field = key.rsplit_once('_').filter(|(_, n)| n.parse::<usize>().is_ok()).map_or(key, |(f, _)| f);
            match table.last_mut() {
                Some((f, v)) if f == field => {
                    v.push(' ');
                    v.push_str(token);
                }
                _ => table.push((field.to_owned(), token.to_owned())),
            }
        }
        let summary = summaries
            .get(i)
            .ok_or_else(|| malformed(summary_path, i + 1, format!("no summary for infobox line {}", i + 1)))?;
        out.push(Record { id: (i + 1).to_string(), input: Input::Table(table), references: vec![summary.to_string()] });
    }
    if summaries.len() > out.len() {
        return Err(malformed(
            summary_path,
            out.len() + 1,
            format!("{} summaries for {} infoboxes", summaries.len(), out.len()),
        ));
    }
    Ok(out)
}

/// Generation splits of data-to-text records: each item's input linearised as its text and its first
/// reference as its training target, and every reference kept for validation and test scoring.
pub fn splits(
    name: &str,
    train: Vec<Record>,
    val: Vec<Record>,
    test: Vec<Record>,
) -> crate::summarization::SummarySplits {
    let items = |records: &[Record]| -> Vec<crate::summarization::Article> {
        records
            .iter()
            .map(|r| crate::summarization::Article {
                id: r.id.clone(),
                url: String::new(),
                title: String::new(),
                summary: r.references.first().cloned().unwrap_or_default(),
                text: linearise(&r.input),
            })
            .collect()
    };
    let refs = |records: &[Record]| -> Vec<Vec<String>> { records.iter().map(|r| r.references.clone()).collect() };
    let inputs = |records: &[Record]| -> Vec<Input> { records.iter().map(|r| r.input.clone()).collect() };
    crate::summarization::SummarySplits {
        name: name.to_owned(),
        train: items(&train),
        val: items(&val),
        test: items(&test),
        references: Some((refs(&val), refs(&test))),
        inputs: Some([inputs(&train), inputs(&val), inputs(&test)]),
    }
}

/// E2E from the release's folder: `trainset.csv` for training and `devset.csv` for validation where the
/// folder has the training file; without it (pelt's shipped copy), every twelfth MR of `devset.csv`
/// validates (45 of its 547) and the other 502 are the training pool, so that the few-shot protocol's
/// K = 500 tables can be drawn beside a disjoint selection set. Test: `testset_w_refs.csv`.
pub fn e2e(dir: &Path) -> Result<crate::summarization::SummarySplits, DataError> {
    let dev = read_e2e(&dir.join("devset.csv"))?;
    let test = read_e2e(&dir.join("testset_w_refs.csv"))?;
    let (train, val) = if dir.join("trainset.csv").is_file() {
        (read_e2e(&dir.join("trainset.csv"))?, dev)
    } else {
        let (mut train, mut val) = (Vec::new(), Vec::new());
        for (i, r) in dev.into_iter().enumerate() {
            if i % 12 == 11 {
                val.push(r);
            } else {
                train.push(r);
            }
        }
        (train, val)
    };
    Ok(splits("e2e", train, val, test))
}

/// WebNLG 2017 from the release's folder: `train/` and `dev/` (by number of triples) and
/// `test/testdata_with_lex.xml`.
pub fn webnlg(dir: &Path) -> Result<crate::summarization::SummarySplits, DataError> {
    let train = read_webnlg_dir(&dir.join("train"))?;
    let val = read_webnlg_dir(&dir.join("dev"))?;
    let test = read_webnlg(&dir.join("test").join("testdata_with_lex.xml"))?;
    Ok(splits("webnlg", train, val, test))
}

/// A DBpedia identifier or property as words: underscores as spaces, camelCase split.
fn words(s: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in s.replace('_', " ").chars() {
        if c.is_uppercase() && prev_lower {
            out.push(' ');
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
        prev_lower = c.is_lowercase();
    }
    out.trim_matches('"').to_owned()
}

/// The encoder's input for a record (see the module's rules).
pub fn linearise(input: &Input) -> String {
    match input {
        Input::Table(pairs) => pairs.iter().map(|(a, v)| format!("{a}: {v}")).collect::<Vec<_>>().join(" | "),
        Input::Triples(ts) => ts
            .iter()
            .map(|(s, p, o)| format!("{} ; {} ; {}", words(s), words(p), words(o)))
            .collect::<Vec<_>>()
            .join(" | "),
    }
}

/// One unit of content a plan orders: an attribute–value pair of a table, or a triple.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    /// How the plan names it: the attribute (E2E's `eatType` → `eat type`) or the triple's property
    /// (`birthPlace` → `birth place`), as words.
    pub name: String,
    /// What a reference says when it realises this key: the attribute's value, the triple's object.
    pub value: String,
    /// The key's segment of the linearised input (`name: The Eagle`, `subject ; property ; object`).
    pub segment: String,
}

/// The keys of an input in input order (see [`Key`]).
pub fn keys(input: &Input) -> Vec<Key> {
    match input {
        Input::Table(pairs) => pairs
            .iter()
            .map(|(a, v)| Key { name: words(a).to_lowercase(), value: v.clone(), segment: format!("{a}: {v}") })
            .collect(),
        Input::Triples(ts) => ts
            .iter()
            .map(|(sub, p, o)| Key {
                name: words(p).to_lowercase(),
                value: words(o),
                segment: format!("{} ; {} ; {}", words(sub), words(p), words(o)),
            })
            .collect(),
    }
}

/// Where a reference first realises a key, as a byte offset into its lowercased text: the key's value
/// where it occurs verbatim (case-insensitive); otherwise — a yes / no value (E2E's `familyFriendly`), a
/// number written in words, a paraphrased object — the first word of the key's name of four letters or
/// more (`family`, `customer`, `price`); `None` where neither occurs.
fn realised_at(key: &Key, reference: &str) -> Option<usize> {
    let text = reference.to_lowercase();
    let value = key.value.to_lowercase();
    if !value.trim().is_empty() {
        if let Some(at) = text.find(value.trim()) {
            return Some(at);
        }
    }
    key.name.split_whitespace().filter(|w| w.chars().count() >= 4).find_map(|w| text.find(w))
}

/// The content plan a reference follows, read off its text (PCG's planner learns from these): the
/// indices of the keys it realises, ordered by where each first occurs (ties in input order). Keys the
/// reference never mentions are left out.
pub fn gold_plan(input: &Input, reference: &str) -> Vec<usize> {
    let mut found: Vec<(usize, usize)> =
        keys(input).iter().enumerate().filter_map(|(i, k)| realised_at(k, reference).map(|at| (at, i))).collect();
    found.sort();
    found.into_iter().map(|(_, i)| i).collect()
}

/// PCG's input-specific prefix as text in front of the linearised input: the planned keys' names in
/// plan order joined by ` , `, then ` || ` and the input (`name , food , area || name: The Eagle | …`).
pub fn planned_text(input: &Input, plan: &[usize]) -> String {
    let keys = keys(input);
    let names: Vec<&str> = plan.iter().filter_map(|&i| keys.get(i)).map(|k| k.name.as_str()).collect();
    format!("{} || {}", names.join(" , "), linearise(input)).trim_start().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e2e_mrs_parse_and_bad_ones_are_refused() {
        let pairs = parse_mr("name[The Eagle], eatType[coffee shop], priceRange[less than £20]").unwrap();
        assert_eq!(pairs[2], ("priceRange".into(), "less than £20".into()));
        assert!(parse_mr("name[The Eagle").is_err());
        assert!(parse_mr("[x]").is_err());
        assert_eq!(linearise(&Input::Table(pairs[..2].to_vec())), "name: The Eagle | eatType: coffee shop");
    }

    #[test]
    fn e2e_rows_group_by_mr_with_file_and_row_in_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("dev.csv");
        std::fs::write(&p, "mr,ref\r\n\"name[A], area[city centre]\",\"A is central.\"\r\n\"name[A], area[city centre]\",\"In the centre, A.\"\r\n\"name[B]\",\"B.\"\r\n").unwrap();
        let r = read_e2e(&p).unwrap();
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].references, ["A is central.", "In the centre, A."]);
        std::fs::write(&p, "mr,ref\n\"name[A\",\"x\"\n").unwrap();
        let err = read_e2e(&p).unwrap_err().to_string();
        assert!(err.contains("dev.csv:2") && err.contains("field `mr`"), "{err}");
        std::fs::write(&p, "meaning,ref\n").unwrap();
        assert!(read_e2e(&p).unwrap_err().to_string().contains("`mr` column"));
    }

    #[test]
    fn webnlg_entries_read_with_entities_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.xml");
        let xml = "<benchmark><entries><entry category=\"Food\" eid=\"Id7\" size=\"2\">\n<modifiedtripleset>\n<mtriple>Bakewell_pudding | mainIngredient | Ground_almond</mtriple>\n<mtriple>Bakewell_pudding | region | Derbyshire_Dales</mtriple>\n</modifiedtripleset>\n<lex comment=\"good\" lid=\"Id1\">Almonds &amp; jam are in Bakewell pudding.</lex>\n</entry></entries></benchmark>";
        std::fs::write(&p, xml).unwrap();
        let r = read_webnlg(&p).unwrap();
        assert_eq!(r[0].id, "Food/Id7");
        assert_eq!(r[0].references, ["Almonds & jam are in Bakewell pudding."]);
        assert_eq!(
            linearise(&r[0].input),
            "Bakewell pudding ; main ingredient ; Ground almond | Bakewell pudding ; region ; Derbyshire Dales"
        );
        std::fs::write(&p, xml.replace("Bakewell_pudding | region | Derbyshire_Dales", "only two | parts")).unwrap();
        let err = read_webnlg(&p).unwrap_err().to_string();
        assert!(err.contains("a.xml:4") && err.contains("subject | property | object"), "{err}");
        // An entry without a reference beside entries with them is refused by id and line; a file
        // without any (a bare test file) reads.
        let bare =
            xml.replace("<lex comment=\"good\" lid=\"Id1\">Almonds &amp; jam are in Bakewell pudding.</lex>\n", "");
        let second = bare.replace("eid=\"Id7\"", "eid=\"Id8\"").replace("<benchmark><entries>", "");
        std::fs::write(&p, xml.replace("</entries></benchmark>", &format!("\n{second}"))).unwrap();
        let err = read_webnlg(&p).unwrap_err().to_string();
        assert!(err.contains("a.xml:13") && err.contains("entry Food/Id8: no <lex>"), "{err}");
        std::fs::write(&p, &bare).unwrap();
        assert!(read_webnlg(&p).unwrap()[0].references.is_empty());
    }

    #[test]
    fn plans_are_read_off_references_in_text_order() {
        let table = Input::Table(vec![
            ("name".into(), "The Eagle".into()),
            ("eatType".into(), "coffee shop".into()),
            ("familyFriendly".into(), "yes".into()),
            ("area".into(), "riverside".into()),
        ]);
        let names: Vec<String> = keys(&table).into_iter().map(|k| k.name).collect();
        assert_eq!(names, ["name", "eat type", "family friendly", "area"]);
        // The value where it is written, the key's long name word where it is not ("family"), and an
        // unmentioned key (the eat type) left out.
        let plan = gold_plan(&table, "By the riverside, the family-friendly spot The Eagle welcomes you.");
        assert_eq!(plan, vec![3, 2, 0]);
        assert_eq!(planned_text(&table, &plan), "area , family friendly , name || name: The Eagle | eatType: coffee shop | familyFriendly: yes | area: riverside");
        assert_eq!(
            planned_text(&table, &[]),
            "|| name: The Eagle | eatType: coffee shop | familyFriendly: yes | area: riverside"
        );
        let triples = Input::Triples(vec![
            ("Alan_Bean".into(), "birthPlace".into(), "Wheeler,_Texas".into()),
            ("Alan_Bean".into(), "occupation".into(), "Test_pilot".into()),
        ]);
        assert_eq!(keys(&triples)[0].name, "birth place");
        assert_eq!(gold_plan(&triples, "Alan Bean was a test pilot born in Wheeler, Texas."), vec![1, 0]);
        assert!(gold_plan(&triples, "Nothing here.").is_empty());
    }

    #[test]
    fn wikibio_boxes_group_their_fields() {
        let dir = tempfile::tempdir().unwrap();
        let (b, s) = (dir.path().join("t.box"), dir.path().join("t.summary"));
        std::fs::write(&b, "name_1:walter\tname_2:extra\tbirth_date_1:1900\timage:<none>\n").unwrap();
        std::fs::write(&s, "walter extra was born in 1900 .\n").unwrap();
        let r = read_wikibio(&b, &s).unwrap();
        assert_eq!(
            r[0].input,
            Input::Table(vec![("name".into(), "walter extra".into()), ("birth_date".into(), "1900".into())])
        );
        std::fs::write(&s, "").unwrap();
        assert!(read_wikibio(&b, &s).unwrap_err().to_string().contains("t.summary:1"));
    }
}
