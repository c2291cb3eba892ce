//! Checkpoint selection, shared by every task family.

use pelt_records::CurvePoint;
use tch::Tensor;

/// Model selection while training: every dev evaluation with the mean training loss since the one
/// before, and a copy of the trainable tensors at the best dev score so far (the earliest one on a tie),
/// which [`Selection::restore_best`] puts back before the test evaluation. Classification and
/// summarization runs share it.
#[derive(Debug, Default)]
pub struct Selection {
    best: Option<(f64, usize, Vec<Tensor>)>,
    curve: Vec<CurvePoint>,
    loss_sum: f64,
    loss_steps: usize,
}

impl Selection {
    /// Counts one training step's loss towards the next evaluation's mean.
    pub fn add_loss(&mut self, loss: f64) {
        self.loss_sum += loss;
        self.loss_steps += 1;
    }

    /// Records the dev score after `step` steps; copies `params` when it beats every earlier one.
    pub fn observe(&mut self, step: usize, dev: f64, params: &[(String, Tensor)]) {
        let train_loss = if self.loss_steps == 0 { f64::NAN } else { self.loss_sum / self.loss_steps as f64 };
        self.curve.push(CurvePoint { step, dev, train_loss });
        (self.loss_sum, self.loss_steps) = (0.0, 0);
        if self.best.as_ref().is_none_or(|b| dev > b.0) {
            let snapshot = tch::no_grad(|| params.iter().map(|(_, t)| t.detach().copy()).collect());
            self.best = Some((dev, step, snapshot));
        }
    }

    /// Copies the best snapshot back into `params` (the same list, in the same order, as
    /// [`Selection::observe`] saw) and returns its dev score and step; `None` when nothing was evaluated.
    pub fn restore_best(&self, params: &[(String, Tensor)]) -> Option<(f64, usize)> {
        let (score, step, snapshot) = self.best.as_ref()?;
        tch::no_grad(|| {
            for ((_, t), saved) in params.iter().zip(snapshot) {
                t.shallow_clone().copy_(saved);
            }
        });
        Some((*score, *step))
    }

    /// The dev curve so far.
    pub fn curve(&self) -> &[CurvePoint] {
        &self.curve
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selection_keeps_the_curve_and_restores_the_first_best_checkpoint() {
        let w = Tensor::from_slice(&[0.0f32, 0.0]);
        let params = vec![("w".to_owned(), w.shallow_clone())];
        let set = |v: [f32; 2]| tch::no_grad(|| w.shallow_clone().copy_(&Tensor::from_slice(&v)));
        let mut selection = Selection::default();
        assert_eq!(selection.restore_best(&params), None, "nothing evaluated yet");
        for (loss, dev, value) in [(2.0, 60.0, [1.0, 2.0]), (1.0, 75.0, [3.0, 4.0]), (0.5, 75.0, [5.0, 6.0])] {
            set(value);
            selection.add_loss(loss);
            selection.add_loss(loss + 1.0);
            selection.observe(selection.curve().len() * 10 + 10, dev, &params);
        }
        let points: Vec<(usize, f64, f64)> = selection.curve().iter().map(|p| (p.step, p.dev, p.train_loss)).collect();
        assert_eq!(points, [(10, 60.0, 2.5), (20, 75.0, 1.5), (30, 75.0, 1.0)], "each loss mean covers its window");
        // A tie does not move the selection: the earlier checkpoint stays.
        assert_eq!(selection.restore_best(&params), Some((75.0, 20)));
        assert_eq!(Vec::<f32>::try_from(&w).unwrap(), [3.0, 4.0]);
    }
}
