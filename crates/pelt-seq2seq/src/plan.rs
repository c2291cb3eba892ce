//! PCG's content planner: which of an input's keys (table attributes, triples) the text realises, and
//! in which order — the input-specific prefix of PCG (Luo et al., COLING 2022), predicted by a
//! sequence labeller and written in front of the linearised input.
//!
//! The planner is a BiLSTM-CRF over the input's keys in input order, as in the authors' code (its
//! `SequenceLabeling` selector): each key is read as the mean of the frozen backbone's word embeddings
//! over its segment of the linearised input, a bidirectional LSTM contextualises the keys, and a
//! linear-chain CRF tags each with its position in the plan (1, 2, …) or 0 for a key the text leaves out.
//! The authors tag table tokens for selection; position tags let one CRF decode both the selection and
//! the order the paper's prefix controls, and its transitions learn that positions rise.
//!
//! It trains on the plans the training references follow (`pelt_data::d2t::gold_plan`), with Adam on the
//! CRF's negative log-likelihood, keeping the epoch whose plans agree best with the dev items' (their
//! first references'), before the generator trains; the generator trains on those gold plans
//! and is evaluated on the planner's (the references of a dev or test item are not seen).

use crate::data::SummaryData;
use anyhow::{anyhow, Result};
use pelt_core::PlannerSettings;
use pelt_data::{d2t, TextTokenizer};
use rand::{seq::SliceRandom, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tch::{
    nn::{self, Module, OptimizerConfig, RNN},
    Device, Kind, Tensor,
};

/// Examples per optimizer step.
const BATCH: usize = 16;

/// The epoch kept so far: its dev agreement, number, training NLL and a copy of the variables.
type Kept = (f64, usize, f64, Vec<(String, Tensor)>);

/// A BiLSTM-CRF tagging each key with its plan position.
#[derive(Debug)]
pub struct Planner {
    vs: nn::VarStore,
    lstm: nn::LSTM,
    emit: nn::Linear,
    /// transitions[i][j]: score of tag j after tag i.
    transitions: Tensor,
    start: Tensor,
    end: Tensor,
    settings: PlannerSettings,
}

impl Planner {
    /// A planner over keys of `input` features with `tags` tags (0 and positions 1..tags), drawn from the
    /// global generator.
    pub fn new(input: i64, tags: i64, settings: PlannerSettings, device: Device) -> Planner {
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let config = nn::RNNConfig { bidirectional: true, batch_first: true, ..Default::default() };
        let lstm = nn::lstm(&root / "lstm", input, settings.hidden, config);
        let emit = nn::linear(&root / "emit", 2 * settings.hidden, tags, Default::default());
        let transitions = root.zeros("transitions", &[tags, tags]);
        let start = root.zeros("start", &[tags]);
        let end = root.zeros("end", &[tags]);
        Planner { vs, lstm, emit, transitions, start, end, settings }
    }

    /// Trainable parameters.
    pub fn params(&self) -> i64 {
        self.vs.trainable_variables().iter().map(|t| t.numel() as i64).sum()
    }

    /// Per-key tag scores (n, tags) for key features (n, input).
    fn emissions(&self, features: &Tensor) -> Tensor {
        let (out, _) = self.lstm.seq(&features.unsqueeze(0));
        self.emit.forward(&out.squeeze_dim(0))
    }

    /// The CRF's negative log-likelihood of `tags` given emissions (n, tags): log Z − score(tags).
    fn nll(&self, emissions: &Tensor, tags: &[i64]) -> Tensor {
        let n = tags.len();
        let mut alpha = &self.start + emissions.get(0);
        for i in 1..n {
            alpha = (alpha.unsqueeze(1) + &self.transitions).logsumexp([0].as_slice(), false) + emissions.get(i as i64);
        }
        let log_z = (alpha + &self.end).logsumexp([0].as_slice(), false);
        let mut score = self.start.get(tags[0]) + emissions.get(0).get(tags[0]);
        for i in 1..n {
            score = score + self.transitions.get(tags[i - 1]).get(tags[i]) + emissions.get(i as i64).get(tags[i]);
        }
        log_z - (score + self.end.get(tags[n - 1]))
    }

    /// Trains on (key features, gold tags) pairs, shuffled with `seed`, and keeps the epoch whose
    /// decoded tags agree best with the `dev` pairs' (the last epoch where `dev` is empty). Returns that
    /// epoch (from 1) and its mean negative log-likelihood per training table.
    pub fn fit(
        &mut self,
        examples: &[(Tensor, Vec<i64>)],
        dev: &[(Tensor, Vec<i64>)],
        seed: u64,
    ) -> Result<(usize, f64)> {
        let mut opt = nn::Adam::default().build(&self.vs, self.settings.lr)?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x91a7);
        let mut order: Vec<usize> = (0..examples.len()).filter(|&i| !examples[i].1.is_empty()).collect();
        let mut best: Option<Kept> = None;
        for epoch in 1..=self.settings.epochs {
            order.shuffle(&mut rng);
            let mut total = 0.0;
            for chunk in order.chunks(BATCH) {
                let losses: Vec<Tensor> =
                    chunk.iter().map(|&i| self.nll(&self.emissions(&examples[i].0), &examples[i].1)).collect();
                let loss = Tensor::stack(&losses, 0).mean(Kind::Float);
                total += loss.double_value(&[]) * chunk.len() as f64;
                opt.backward_step(&loss);
            }
            let nll = total / order.len().max(1) as f64;
            let mut agree = 0.0;
            for (f, want) in dev {
                agree += self.decode(f)?.iter().zip(want).filter(|(a, b)| a == b).count() as f64;
            }
            if dev.is_empty() || best.as_ref().is_none_or(|b| agree > b.0) {
                let snapshot = tch::no_grad(|| {
                    self.vs.variables().into_iter().map(|(n, t)| (n, t.detach().copy())).collect::<Vec<_>>()
                });
                best = Some((agree, epoch, nll, snapshot));
            }
        }
        let (_, epoch, nll, snapshot) = best.ok_or_else(|| anyhow!("the planner trains for at least one epoch"))?;
        let vars = self.vs.variables();
        tch::no_grad(|| {
            for (name, value) in &snapshot {
                vars[name].shallow_clone().copy_(value);
            }
        });
        Ok((epoch, nll))
    }

    /// The highest-scoring tag sequence for key features (n, input) (Viterbi).
    pub fn decode(&self, features: &Tensor) -> Result<Vec<i64>> {
        let n = features.size()[0] as usize;
        if n == 0 {
            return Ok(Vec::new());
        }
        let (em, tr, st, en) = tch::no_grad(|| {
            let rows = |t: &Tensor| Vec::<Vec<f32>>::try_from(t.to_kind(Kind::Float).contiguous());
            let flat = |t: &Tensor| Vec::<f32>::try_from(t.to_kind(Kind::Float).contiguous());
            Ok::<_, tch::TchError>((
                rows(&self.emissions(features))?,
                rows(&self.transitions)?,
                flat(&self.start)?,
                flat(&self.end)?,
            ))
        })?;
        Ok(viterbi(&em, &tr, &st, &en))
    }
}

/// Viterbi over emissions (n × T), transitions (T × T), start and end scores (T).
pub fn viterbi(emissions: &[Vec<f32>], transitions: &[Vec<f32>], start: &[f32], end: &[f32]) -> Vec<i64> {
    let tags = start.len();
    let mut score: Vec<f32> = (0..tags).map(|j| start[j] + emissions[0][j]).collect();
    let mut back: Vec<Vec<usize>> = Vec::new();
    for e in &emissions[1..] {
        let mut next = vec![f32::NEG_INFINITY; tags];
        let mut from = vec![0; tags];
        for j in 0..tags {
            for i in 0..tags {
                let s = score[i] + transitions[i][j];
                if s > next[j] {
                    next[j] = s;
                    from[j] = i;
                }
            }
            next[j] += e[j];
        }
        back.push(from);
        score = next;
    }
    let mut best = (0..tags).max_by(|&a, &b| (score[a] + end[a]).total_cmp(&(score[b] + end[b]))).unwrap_or(0);
    let mut path = vec![best as i64];
    for from in back.iter().rev() {
        best = from[best];
        path.push(best as i64);
    }
    path.reverse();
    path
}

/// A task as one run of a planning method sees it, and what planning cost and scored.
#[derive(Debug)]
pub struct Planned {
    /// The task with the used items' encoder inputs replaced by their planned text: the training
    /// items' gold plans, the dev and test items' predicted ones.
    pub data: SummaryData,
    /// The planner's trainable parameters.
    pub params: i64,
    /// `planner_epoch` (the epoch kept by the dev plans) and its `planner_train_nll`, and per split `plan_exact_<split>` (share of items whose
    /// predicted plan is the one their first reference follows) and `plan_tags_<split>` (share of keys
    /// tagged as that plan tags them).
    pub diagnostics: Vec<(String, f64)>,
}

/// Trains a planner on the plans of the training items `rows[0]` (from their first reference) and
/// writes every used item's plan in front of its input: gold for training items, predicted for the
/// dev items `rows[1]` and test items `rows[2]`.
pub fn planned(
    task: &SummaryData,
    model: &dyn pelt_backbone::Seq2Seq,
    tokenizer: &TextTokenizer,
    settings: PlannerSettings,
    rows: [&[usize]; 3],
    seed: u64,
) -> Result<Planned> {
    let name = &task.splits.name;
    let inputs = task.splits.inputs.as_ref().ok_or_else(|| {
        anyhow!("{name}: pcg plans the keys of data-to-text inputs (e2e, webnlg); this task has none")
    })?;
    let articles = [&task.splits.train, &task.splits.val, &task.splits.test];
    let embeddings = word_embeddings(model)?;
    let tags = 1 + inputs.iter().flatten().map(|i| d2t::keys(i).len()).max().unwrap_or(1) as i64;
    // Features and gold plans of every used item.
    let mut features: [Vec<(usize, Tensor, Vec<usize>)>; 3] = Default::default();
    for s in 0..3 {
        for &r in rows[s] {
            let input = &inputs[s][r];
            let f = key_features(input, tokenizer, &embeddings)?;
            features[s].push((r, f, d2t::gold_plan(input, &articles[s][r].summary)));
        }
    }
    let examples: Vec<(Tensor, Vec<i64>)> =
        features[0].iter().map(|(_, f, plan)| (f.shallow_clone(), tags_of(f.size()[0] as usize, plan, tags))).collect();
    let dev: Vec<(Tensor, Vec<i64>)> =
        features[1].iter().map(|(_, f, plan)| (f.shallow_clone(), tags_of(f.size()[0] as usize, plan, tags))).collect();
    let mut planner = Planner::new(embeddings.size()[1], tags, settings, embeddings.device());
    let (epoch, nll) = planner.fit(&examples, &dev, seed)?;
    let mut diagnostics = vec![("planner_epoch".to_owned(), epoch as f64), ("planner_train_nll".to_owned(), nll)];
    let mut data = task.clone();
    for (s, split) in ["train", "dev", "test"].into_iter().enumerate() {
        let mut texts = Vec::new();
        let (mut exact, mut right, mut keys) = (0usize, 0usize, 0usize);
        for (r, f, gold) in &features[s] {
            let plan = if s == 0 {
                gold.clone()
            } else {
                let predicted = planner.decode(f)?;
                let n = predicted.len();
                let want = tags_of(n, gold, tags);
                right += predicted.iter().zip(&want).filter(|(a, b)| a == b).count();
                keys += n;
                let plan = plan_of(&predicted);
                exact += usize::from(plan_of(&want) == plan);
                plan
            };
            texts.push(d2t::planned_text(&inputs[s][*r], &plan));
        }
        if s > 0 && !texts.is_empty() {
            diagnostics.push((format!("plan_exact_{split}"), exact as f64 / texts.len() as f64));
            diagnostics.push((format!("plan_tags_{split}"), right as f64 / keys.max(1) as f64));
        }
        let encoded = tokenizer.encode_texts(&texts.iter().map(String::as_str).collect::<Vec<_>>())?;
        let (target, articles) = match s {
            0 => (&mut data.train, &mut data.splits.train),
            1 => (&mut data.val, &mut data.splits.val),
            _ => (&mut data.test, &mut data.splits.test),
        };
        for (((r, _, _), e), text) in features[s].iter().zip(encoded).zip(texts) {
            target[*r] = e;
            // The article's text is what the encoder reads (samples show it).
            articles[*r].text = text;
        }
    }
    Ok(Planned { data, params: planner.params(), diagnostics })
}

/// Gold tags of `n` keys for a plan (key indices in order): position p → tag p + 1 (capped at the last
/// tag), keys outside the plan 0.
pub fn tags_of(n: usize, plan: &[usize], tags: i64) -> Vec<i64> {
    let mut out = vec![0; n];
    for (p, &k) in plan.iter().enumerate() {
        if k < n {
            out[k] = (p as i64 + 1).min(tags - 1);
        }
    }
    out
}

/// The plan tags describe: keys with a position, by position (ties in input order).
pub fn plan_of(tags: &[i64]) -> Vec<usize> {
    let mut keyed: Vec<(i64, usize)> = tags.iter().enumerate().filter(|(_, &t)| t > 0).map(|(i, &t)| (t, i)).collect();
    keyed.sort();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Key features (n, d): each key's segment of the linearised input read as the mean of the frozen word
/// embeddings (vocab, d) of its pieces.
pub fn key_features(input: &d2t::Input, tokenizer: &TextTokenizer, embeddings: &Tensor) -> Result<Tensor> {
    let keys = d2t::keys(input);
    let segments: Vec<&str> = keys.iter().map(|k| k.segment.as_str()).collect();
    let ids = tokenizer.encode_targets(&segments, 64)?;
    let device = embeddings.device();
    tch::no_grad(|| {
        let rows: Vec<Tensor> = ids
            .iter()
            .map(|piece_ids| {
                if piece_ids.is_empty() {
                    Tensor::zeros([embeddings.size()[1]], (Kind::Float, device))
                } else {
                    embeddings.index_select(0, &Tensor::from_slice(piece_ids).to_device(device)).mean_dim(
                        0,
                        false,
                        Kind::Float,
                    )
                }
            })
            .collect();
        if rows.is_empty() {
            Ok(Tensor::zeros([0, embeddings.size()[1]], (Kind::Float, device)))
        } else {
            Ok(Tensor::stack(&rows, 0))
        }
    })
}

/// The word-embedding matrix of an encoder-decoder's vocabulary (BERT's `word_embeddings`, T5's
/// `shared`).
pub fn word_embeddings(model: &dyn pelt_backbone::Seq2Seq) -> Result<Tensor> {
    let vars = model.var_store().variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    names
        .into_iter()
        .find(|n| n.ends_with("word_embeddings.weight") || n.as_str() == "shared.weight")
        .map(|n| vars[n].detach())
        .ok_or_else(|| anyhow!("the encoder-decoder has no word-embedding matrix to read plan keys with"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every tag sequence's total score, by brute force.
    fn best_by_enumeration(em: &[Vec<f32>], tr: &[Vec<f32>], st: &[f32], en: &[f32]) -> Vec<i64> {
        let (n, t) = (em.len(), st.len());
        let mut best = (f32::NEG_INFINITY, Vec::new());
        for code in 0..t.pow(n as u32) {
            let path: Vec<usize> = (0..n).map(|i| (code / t.pow(i as u32)) % t).collect();
            let mut s = st[path[0]] + em[0][path[0]] + en[path[n - 1]];
            for i in 1..n {
                s += tr[path[i - 1]][path[i]] + em[i][path[i]];
            }
            if s > best.0 {
                best = (s, path.iter().map(|&p| p as i64).collect());
            }
        }
        best.1
    }

    #[test]
    fn viterbi_finds_the_best_path() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        use rand::Rng;
        for _ in 0..20 {
            let (n, t) = (4, 3);
            let mut draw = |k: usize| (0..k).map(|_| rng.random_range(-2.0f32..2.0)).collect::<Vec<f32>>();
            let em: Vec<Vec<f32>> = (0..n).map(|_| draw(t)).collect();
            let tr: Vec<Vec<f32>> = (0..t).map(|_| draw(t)).collect();
            let (st, en) = (draw(t), draw(t));
            assert_eq!(viterbi(&em, &tr, &st, &en), best_by_enumeration(&em, &tr, &st, &en));
        }
    }

    #[test]
    fn tags_and_plans_round_trip() {
        let tags = tags_of(5, &[3, 0, 4], 6);
        assert_eq!(tags, vec![2, 0, 0, 1, 3]);
        assert_eq!(plan_of(&tags), vec![3, 0, 4]);
        // Positions past the last tag share it, in input order.
        assert_eq!(tags_of(4, &[2, 1, 0, 3], 3), vec![2, 2, 1, 2]);
        assert_eq!(plan_of(&[2, 2, 1, 2]), vec![2, 0, 1, 3]);
    }

    #[test]
    fn the_crf_likelihood_normalises_and_training_learns_a_plan() {
        tch::manual_seed(0);
        let settings = PlannerSettings { hidden: 8, epochs: 60, lr: 1e-2 };
        let mut planner = Planner::new(4, 4, settings, Device::Cpu);
        let features = Tensor::eye(4, (Kind::Float, Device::Cpu)).narrow(0, 0, 3);
        // Probabilities of every tag sequence of 3 keys over 4 tags sum to 1.
        let em = planner.emissions(&features);
        let mut total = 0.0;
        for code in 0..64 {
            let tags: Vec<i64> = (0..3).map(|i| (code / 4i64.pow(i)) % 4).collect();
            total += (-planner.nll(&em, &tags)).exp().double_value(&[]);
        }
        assert!((total - 1.0).abs() < 1e-4, "{total}");
        // One table whose text realises key 2, then key 0, and leaves key 1 out.
        let gold = tags_of(3, &[2, 0], 4);
        let pair = (features.shallow_clone(), gold.clone());
        let (epoch, nll) = planner.fit(std::slice::from_ref(&pair), &[], 0).unwrap();
        assert_eq!(epoch, 60, "with no dev pairs the last epoch stays");
        assert!(nll < 0.1, "{nll}");
        assert_eq!(plan_of(&planner.decode(&features).unwrap()), vec![2, 0]);
    }
}
