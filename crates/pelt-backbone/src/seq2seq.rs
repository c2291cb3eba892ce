//! Sequence-to-sequence models: what an encoder-decoder offers on top of [`Backbone`] (next-token
//! logits over the encoder's output, its special token ids), and what pelt builds on it once for every
//! such model: the teacher-forced training loss, greedy decoding and beam search with length limits.

use pelt_core::{Attachment, Backbone, Encoded, Inputs};
use tch::{Kind, Tensor};

/// The decoder's special tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpecialIds {
    /// The first decoder input.
    pub start: i64,
    /// End of sequence.
    pub eos: i64,
    /// Padding.
    pub pad: i64,
}

/// An encoder-decoder: [`Backbone::forward`] is its encoder.
pub trait Seq2Seq: Backbone {
    /// Next-token logits (batch, t, vocab) for decoder inputs (batch, t) given the encoder's output.
    fn logits(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment, train: bool) -> Tensor;
    /// Logits (batch, vocab) of the next token after the last decoder input only: what decoding needs,
    /// without the LM head's cost at every earlier position.
    fn last_logits(&self, encoded: &Encoded, decoder_ids: &Tensor, m: &dyn Attachment) -> Tensor {
        let t = decoder_ids.size()[1];
        self.logits(encoded, decoder_ids, m, false).select(1, t - 1)
    }
    /// The decoder's special tokens.
    fn special_ids(&self) -> SpecialIds;
    /// Parts that are not pretrained and train in every run whatever the method, as a task head does
    /// (a warm-started decoder's new cross-attention and output transform); `None` when every weight
    /// is pretrained.
    fn new_parts(&self) -> Option<&tch::nn::VarStore> {
        None
    }
    /// Draws the new parts afresh from libtorch's generator (each run starts them from its own seed).
    fn reset_new_parts(&self) {}
    /// Incremental decoding over `encoded` with `m` attached (see [`Stepper`]), or `None` (the default)
    /// where the model decodes by rerunning its decoder over the whole prefix at every step.
    fn stepper<'a>(&'a self, _encoded: &'a Encoded, _m: &'a dyn Attachment) -> Option<Box<dyn Stepper + 'a>> {
        None
    }
}

/// Incremental decoding: one new position per call, the keys and values of the earlier positions (and of
/// the encoder's output) kept, so that a step costs one position's work instead of the whole prefix's.
pub trait Stepper {
    /// Logits (batch, vocab) of the next token after `last` (batch, 1), the newest decoder inputs; the
    /// first call takes the start tokens.
    fn next_logits(&mut self, last: &Tensor) -> Tensor;
    /// Keeps the rows `rows` (int64 indices into the current batch, in that order) of everything kept:
    /// beam search's surviving hypotheses, a row repeated where a beam forks.
    fn reorder(&mut self, rows: &Tensor);
}

/// The keys and values an incremental decoder keeps for one attention sublayer, (batch, heads, s,
/// d/heads) each: the positions decoded so far (self-attention) or the encoder's output
/// (cross-attention); empty before the first step.
#[derive(Debug, Default)]
pub(crate) struct StepKv(Option<(Tensor, Tensor)>);

impl StepKv {
    /// Self-attention: this step's keys and values appended to the kept ones; returns all of them and
    /// the (batch, s) mask of their positions (every one real).
    pub(crate) fn append(&mut self, k: Tensor, v: Tensor) -> (Tensor, Tensor, Tensor) {
        let (k, v) = match self.0.take() {
            Some((pk, pv)) => (Tensor::cat(&[pk, k], 2), Tensor::cat(&[pv, v], 2)),
            None => (k, v),
        };
        self.0 = Some((k.shallow_clone(), v.shallow_clone()));
        let keep = Tensor::ones([k.size()[0], k.size()[2]], (Kind::Bool, k.device()));
        (k, v, keep)
    }

    /// Cross-attention: the encoder output's keys and values, from `project` at the first step and
    /// kept for the others.
    pub(crate) fn memory(&mut self, project: impl FnOnce() -> (Tensor, Tensor)) -> (Tensor, Tensor) {
        let (k, v) = self.0.get_or_insert_with(project);
        (k.shallow_clone(), v.shallow_clone())
    }

    fn select(&mut self, rows: &Tensor) {
        if let Some((k, v)) = self.0.take() {
            self.0 = Some((k.index_select(0, rows), v.index_select(0, rows)));
        }
    }
}

/// What a [`Stepper`] keeps between steps: each decoder layer's self- and cross-attention keys and
/// values, the encoder's real positions, and the number of steps taken.
#[derive(Debug)]
pub(crate) struct DecodeCache {
    /// Per decoder layer: (self-attention, cross-attention).
    pub(crate) layers: Vec<(StepKv, StepKv)>,
    /// The encoder's real positions (batch, s).
    pub(crate) enc_keep: Tensor,
    /// Positions decoded so far.
    pub(crate) step: i64,
}

impl DecodeCache {
    /// Empty caches for `layers` decoder layers over `encoded`.
    pub(crate) fn new(encoded: &Encoded, layers: usize) -> DecodeCache {
        let layers = (0..layers).map(|_| (StepKv::default(), StepKv::default())).collect();
        DecodeCache { layers, enc_keep: encoded.mask.ne(0), step: 0 }
    }

    /// Keeps the rows `rows` of everything kept (see [`Stepper::reorder`]).
    pub(crate) fn reorder(&mut self, rows: &Tensor) {
        for (own, cross) in &mut self.layers {
            own.select(rows);
            cross.select(rows);
        }
        self.enc_keep = self.enc_keep.index_select(0, rows);
    }
}

/// Decoding settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Generation {
    /// Tokens to generate at most after the start token.
    pub max_new_tokens: usize,
    /// 1: greedy; more: beam search with that many beams.
    pub num_beams: usize,
    /// Beam scores are divided by length^length_penalty.
    pub length_penalty: f64,
    /// No n-gram of this size occurs twice in an output (0: no constraint), as Hugging Face's
    /// `no_repeat_ngram_size`: a token that would complete an n-gram already generated is not chosen.
    pub no_repeat_ngram: usize,
    /// Greedy decoding one position at a time with the earlier keys and values kept, where the model
    /// and the method allow it (see [`Seq2Seq::stepper`]); false reruns the decoder over the whole
    /// prefix at every step (the reference the incremental path is tested against).
    pub incremental: bool,
}

/// The teacher-forced loss of `targets` (token ids, without start or end tokens) given `inputs`: the
/// decoder reads [start, y₁, …, y_n] and predicts [y₁, …, y_n, eos]; mean cross-entropy over the real
/// target positions of the batch (padding never counts).
pub fn loss(model: &dyn Seq2Seq, inputs: &Inputs, targets: &[Vec<i64>], m: &dyn Attachment, train: bool) -> Tensor {
    let ids = model.special_ids();
    let t = targets.iter().map(Vec::len).max().unwrap_or(0) + 1;
    let (mut dec, mut labels) = (Vec::new(), Vec::new());
    for y in targets {
        let mut d = vec![ids.start];
        d.extend_from_slice(y);
        d.resize(t, ids.pad);
        let mut l = y.clone();
        l.push(ids.eos);
        l.resize(t, -100);
        dec.extend(d);
        labels.extend(l);
    }
    let device = inputs.input_ids.device();
    let b = targets.len() as i64;
    let dec = Tensor::from_slice(&dec).view([b, t as i64]).to_device(device);
    let labels = Tensor::from_slice(&labels).view([-1]).to_device(device);
    let encoded = model.forward(inputs, m, train);
    let logits = model.logits(&encoded, &dec, m, train);
    let vocab = logits.size()[2];
    logits.view([-1, vocab]).cross_entropy_loss::<Tensor>(&labels, None, tch::Reduction::Mean, -100, 0.0)
}

/// Generated sequences, each starting with the decoder start token as Hugging Face's `generate`
/// returns them: greedy (`num_beams` 1, finished rows padded) or beam search (best finished
/// hypothesis by score / length^length_penalty, or the best running beam at the length limit).
pub fn generate(model: &dyn Seq2Seq, inputs: &Inputs, m: &dyn Attachment, g: &Generation) -> Vec<Vec<i64>> {
    tch::no_grad(|| {
        let encoded = model.forward(inputs, m, false);
        if g.num_beams <= 1 {
            greedy(model, &encoded, m, g)
        } else {
            let b = encoded.hidden.size()[0];
            (0..b)
                .map(|i| {
                    let one = Encoded {
                        hidden: encoded.hidden.narrow(0, i, 1),
                        mask: encoded.mask.narrow(0, i, 1),
                        inserted: encoded.inserted,
                    };
                    beam(model, &one, m, g)
                })
                .collect()
        }
    })
}

fn last_log_probs(model: &dyn Seq2Seq, encoded: &Encoded, seqs: &[Vec<i64>], m: &dyn Attachment, n: usize) -> Tensor {
    let t = seqs[0].len() as i64;
    let flat: Vec<i64> = seqs.iter().flatten().copied().collect();
    let ids = Tensor::from_slice(&flat).view([seqs.len() as i64, t]).to_device(encoded.hidden.device());
    let lp = model.last_logits(encoded, &ids, m).log_softmax(-1, Kind::Float);
    ban_repeats(lp, seqs, n)
}

/// Sets to −∞ the log-probability of every token that would complete an n-gram already in its row.
fn ban_repeats(lp: Tensor, seqs: &[Vec<i64>], n: usize) -> Tensor {
    if n == 0 {
        return lp;
    }
    let (mut rows, mut tokens) = (Vec::new(), Vec::new());
    for (r, seq) in seqs.iter().enumerate() {
        if seq.len() + 1 < n {
            continue;
        }
        // The n − 1 tokens the next one would follow, against every earlier window of n tokens.
        let tail = &seq[seq.len() + 1 - n..];
        for w in seq.windows(n) {
            if &w[..n - 1] == tail {
                rows.push(r as i64);
                tokens.push(w[n - 1]);
            }
        }
    }
    if rows.is_empty() {
        return lp;
    }
    let device = lp.device();
    let index =
        [Some(Tensor::from_slice(&rows).to_device(device)), Some(Tensor::from_slice(&tokens).to_device(device))];
    let mut lp = lp;
    let _ = lp.index_put_(&index, &Tensor::from(f64::NEG_INFINITY).to_kind(lp.kind()).to_device(device), false);
    lp
}

fn greedy(model: &dyn Seq2Seq, encoded: &Encoded, m: &dyn Attachment, g: &Generation) -> Vec<Vec<i64>> {
    let b = encoded.hidden.size()[0] as usize;
    let c = model.special_ids();
    let mut seqs = vec![vec![c.start]; b];
    let mut done = vec![false; b];
    // Incremental where the model and the method allow it: the same tokens (the equality is tested for
    // every method), a fraction of the work.
    let mut stepper = if g.incremental && m.decodes_incrementally() { model.stepper(encoded, m) } else { None };
    let device = encoded.hidden.device();
    for _ in 0..g.max_new_tokens {
        let lp = match stepper.as_mut() {
            Some(s) => {
                let last: Vec<i64> = seqs.iter().map(|s| s.last().copied().unwrap_or(c.pad)).collect();
                let ids = Tensor::from_slice(&last).view([b as i64, 1]).to_device(device);
                ban_repeats(s.next_logits(&ids).log_softmax(-1, Kind::Float), &seqs, g.no_repeat_ngram)
            }
            None => last_log_probs(model, encoded, &seqs, m, g.no_repeat_ngram),
        };
        let next = Vec::<i64>::try_from(lp.argmax(-1, false)).unwrap_or_default();
        for (i, seq) in seqs.iter_mut().enumerate() {
            seq.push(if done[i] { c.pad } else { next[i] });
            done[i] |= next[i] == c.eos;
        }
        if done.iter().all(|&d| d) {
            break;
        }
    }
    seqs
}

fn beam(model: &dyn Seq2Seq, encoded: &Encoded, m: &dyn Attachment, g: &Generation) -> Vec<i64> {
    let c = model.special_ids();
    let k = g.num_beams;
    let mut beams: Vec<(Vec<i64>, f64)> = vec![(vec![c.start], 0.0)];
    let mut finished: Vec<(Vec<i64>, f64)> = Vec::new();
    let norm = |len: usize, score: f64| score / (len as f64).powf(g.length_penalty);
    // Incremental where allowed: the kept keys and values follow the surviving beams (`reorder`).
    let mut stepper = if g.incremental && m.decodes_incrementally() { model.stepper(encoded, m) } else { None };
    let device = encoded.hidden.device();
    for _ in 0..g.max_new_tokens {
        let n = beams.len() as i64;
        let seqs: Vec<Vec<i64>> = beams.iter().map(|(s, _)| s.clone()).collect();
        let lp = match stepper.as_mut() {
            Some(s) => {
                let last: Vec<i64> = seqs.iter().map(|s| s.last().copied().unwrap_or(c.pad)).collect();
                let ids = Tensor::from_slice(&last).view([n, 1]).to_device(device);
                ban_repeats(s.next_logits(&ids).log_softmax(-1, Kind::Float), &seqs, g.no_repeat_ngram)
            }
            None => {
                let memory = Encoded {
                    hidden: encoded.hidden.expand([n, -1, -1], false),
                    mask: encoded.mask.expand([n, -1], false),
                    inserted: encoded.inserted,
                };
                last_log_probs(model, &memory, &seqs, m, g.no_repeat_ngram)
            }
        };
        let scores = lp + Tensor::from_slice(&beams.iter().map(|b| b.1 as f32).collect::<Vec<_>>()).unsqueeze(1);
        let vocab = scores.size()[1];
        // 2k candidates, so that k survive even when some end the sequence.
        let (top, idx) = scores.view([-1]).topk(2 * k as i64, -1, true, true);
        let top = Vec::<f64>::try_from(top.to_kind(Kind::Double)).unwrap_or_default();
        let idx = Vec::<i64>::try_from(idx).unwrap_or_default();
        let mut next = Vec::new();
        let mut origins = Vec::new();
        for (score, flat) in top.into_iter().zip(idx) {
            let (from, token) = ((flat / vocab) as usize, flat % vocab);
            let mut seq = beams[from].0.clone();
            seq.push(token);
            if token == c.eos {
                finished.push((seq.clone(), norm(seq.len() - 1, score)));
            } else {
                next.push((seq, score));
                origins.push(from as i64);
            }
            if next.len() == k {
                break;
            }
        }
        if let Some(s) = stepper.as_mut() {
            s.reorder(&Tensor::from_slice(&origins).to_device(device));
        }
        beams = next;
        // Stop once k hypotheses are finished and no running beam can beat the worst of them.
        finished.sort_by(|a, b| b.1.total_cmp(&a.1));
        finished.truncate(k);
        if finished.len() == k {
            let worst = finished[k - 1].1;
            let best_running = beams.iter().map(|(s, sc)| norm(s.len() - 1, *sc)).fold(f64::NEG_INFINITY, f64::max);
            if best_running <= worst {
                break;
            }
        }
    }
    let running = beams.into_iter().map(|(s, sc)| (norm(s.len() - 1, sc), s));
    let done = finished.into_iter().map(|(s, sc)| (sc, s));
    done.chain(running).max_by(|a, b| a.0.total_cmp(&b.0)).map(|(_, s)| s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::ban_repeats;
    use tch::{Kind, Tensor};

    #[test]
    fn repeated_ngrams_are_banned_per_row() {
        // Row 0 ends with "1 2" and has "1 2 3" earlier: 3 is banned (n = 3). Row 1 has no repeat.
        let seqs = vec![vec![1, 2, 3, 1, 2], vec![4, 5, 6, 7, 8]];
        let lp = ban_repeats(Tensor::zeros([2, 10], (Kind::Float, tch::Device::Cpu)), &seqs, 3);
        let banned: Vec<f64> =
            Vec::try_from(lp.isinf().to_kind(Kind::Double).sum_dim_intlist([1].as_slice(), false, Kind::Double))
                .unwrap();
        assert_eq!(banned, vec![1.0, 0.0]);
        assert!(lp.double_value(&[0, 3]).is_infinite());
        // n = 2: row 0's last token 2 was followed by 3 before; n = 0 bans nothing.
        let lp = ban_repeats(Tensor::zeros([2, 10], (Kind::Float, tch::Device::Cpu)), &seqs, 2);
        assert!(lp.double_value(&[0, 3]).is_infinite());
        let lp = ban_repeats(Tensor::zeros([2, 10], (Kind::Float, tch::Device::Cpu)), &seqs, 0);
        assert_eq!(lp.isinf().sum(Kind::Int64).int64_value(&[]), 0);
    }
}
