//! Kronecker-product helpers shared by KronA, Compacter and KAdaptation.

use tch::Tensor;

/// (A ⊗ B)·x for every row x of `x` (…, a_cols·b_cols), without forming A ⊗ B: with X the row-major
/// (a_cols × b_cols) view of x, (A ⊗ B)·x is the row-major flattening of A X Bᵀ.
pub fn kron_apply(x: &Tensor, a: &Tensor, b: &Tensor) -> Tensor {
    let size = x.size();
    let (a_rows, a_cols) = a.size2().expect("A is a matrix");
    let (b_rows, b_cols) = b.size2().expect("B is a matrix");
    let lead = &size[..size.len() - 1];
    let x = x.reshape([-1, a_cols, b_cols]);
    let y = a.matmul(&x).matmul(&b.tr());
    let mut out = lead.to_vec();
    out.push(a_rows * b_rows);
    y.reshape(out)
}

/// Σ_i A_i ⊗ B_i for stacks `a` (n, p, q) and `b` (n, r, s): a (p·r × q·s) matrix.
pub fn kron_sum(a: &Tensor, b: &Tensor) -> Tensor {
    let (_, p, q) = a.size3().expect("A is (n, p, q)");
    let (_, r, s) = b.size3().expect("B is (n, r, s)");
    Tensor::einsum("ipq,irs->prqs", &[a, b], None::<&[i64]>).reshape([p * r, q * s])
}

/// Xavier-uniform bound of a (fan_out × fan_in) matrix with `gain`.
pub fn xavier_bound(fan_in: i64, fan_out: i64, gain: f64) -> f64 {
    gain * (6.0 / (fan_in + fan_out) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind};

    #[test]
    fn kron_apply_matches_the_explicit_product() {
        tch::manual_seed(0);
        let opts = (Kind::Double, Device::Cpu);
        let a = Tensor::randn([3, 2], opts);
        let b = Tensor::randn([4, 5], opts);
        let x = Tensor::randn([2, 6, 10], opts);
        let explicit = x.matmul(&a.kron(&b).tr());
        let diff = (kron_apply(&x, &a, &b) - explicit).abs().max().double_value(&[]);
        assert!(diff < 1e-12, "{diff}");
    }

    #[test]
    fn kron_sum_matches_a_sum_of_products() {
        tch::manual_seed(1);
        let opts = (Kind::Double, Device::Cpu);
        let a = Tensor::randn([3, 2, 2], opts);
        let b = Tensor::randn([3, 4, 5], opts);
        let explicit = (0..3).fold(Tensor::zeros([8, 10], opts), |acc, i| acc + a.get(i).kron(&b.get(i)));
        let diff = (kron_sum(&a, &b) - explicit).abs().max().double_value(&[]);
        assert!(diff < 1e-12, "{diff}");
    }
}
