//! Temporal grounding data as the model takes it: every image's frame feature from a frozen vision
//! backbone, computed once, and a set of videos as frame-index sequences with their query and span
//! (the constructed set of `pelt_data::vl::constructed_grounding`, labelled constructed wherever it is
//! used; Charades-STA's features come as they are).

use pelt_backbone::{head::pool, Pooling};
use pelt_core::{Backbone, Inputs, NoMethod};
use pelt_data::vision::ImageSet;
use pelt_data::vl::ConstructedVideo;
use tch::{Device, Kind, Tensor};

/// Images per forward pass of the vision backbone.
const BATCH: usize = 64;

/// Each image's feature (n, d): the frozen vision backbone's final class-token state, in evaluation
/// mode, no method attached.
pub fn frame_features(vision: &dyn Backbone, images: &ImageSet, device: Device) -> Tensor {
    let dims = vision.dims().image.expect("a vision backbone");
    let (c, s) = (dims.channels as usize, dims.size as usize);
    tch::no_grad(|| {
        let chunks: Vec<Tensor> = (0..images.len())
            .collect::<Vec<_>>()
            .chunks(BATCH)
            .map(|rows| {
                let pixels: Vec<f32> = rows.iter().flat_map(|&i| images.input(i, c, s)).collect();
                let shape = [rows.len() as i64, dims.channels, dims.size, dims.size];
                let inputs = Inputs::images(Tensor::from_slice(&pixels).view(shape).to_device(device));
                pool(&vision.forward(&inputs, &NoMethod, false), Pooling::Cls)
            })
            .collect();
        Tensor::cat(&chunks, 0)
    })
}

/// A batch of videos for the grounding model: frame features (batch, T, d) gathered from `features`,
/// the mask of real frames (batch, T), and the gold spans' first and last frames (batch,) each.
#[derive(Debug)]
pub struct VideoBatch {
    /// Frame features.
    pub frames: Tensor,
    /// Real frames (all of a constructed video's).
    pub mask: Tensor,
    /// First frame of each gold span.
    pub start: Tensor,
    /// Last frame of each gold span (inclusive).
    pub last: Tensor,
}

/// The videos `rows` of `videos` as a [`VideoBatch`], shorter videos padded to the longest.
pub fn video_batch(videos: &[ConstructedVideo], rows: &[usize], features: &Tensor) -> VideoBatch {
    let t = rows.iter().map(|&r| videos[r].frames.len()).max().unwrap_or(0);
    let device = features.device();
    let (mut index, mut mask) = (Vec::with_capacity(rows.len() * t), Vec::with_capacity(rows.len() * t));
    for &r in rows {
        let f = &videos[r].frames;
        for k in 0..t {
            index.push(f.get(k).copied().unwrap_or(0) as i64);
            mask.push(i64::from(k < f.len()));
        }
    }
    let b = rows.len() as i64;
    let frames = features.index_select(0, &Tensor::from_slice(&index).to_device(device)).view([b, t as i64, -1]);
    let ints = |v: Vec<i64>| Tensor::from_slice(&v).to_device(device);
    VideoBatch {
        frames,
        mask: ints(mask).view([b, t as i64]).to_kind(Kind::Bool),
        start: ints(rows.iter().map(|&r| videos[r].start as i64).collect()),
        last: ints(rows.iter().map(|&r| videos[r].end as i64 - 1).collect()),
    }
}

/// A video's features (`frames` × `dim`, row-major) resampled to `t` frames, as grounding models resample
/// clip features to a fixed length: output frame k is the mean of the input frames
/// ⌊k·frames/t⌋ .. max(⌊(k+1)·frames/t⌋, that + 1) (repeated input frames when the video is shorter).
pub fn resample(values: &[f32], frames: usize, dim: usize, t: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(t * dim);
    for k in 0..t {
        let lo = (k * frames / t).min(frames.saturating_sub(1));
        let hi = ((k + 1) * frames / t).max(lo + 1).min(frames);
        let n = (hi - lo) as f32;
        for d in 0..dim {
            out.push((lo..hi).map(|f| values[f * dim + d]).sum::<f32>() / n);
        }
    }
    out
}

/// A span in seconds as [first, end) of the `t` resampled frames of a video whose `frames` feature
/// frames run at `fps` a second: ⌊start·fps·t/frames⌋ and ⌈end·fps·t/frames⌉, clipped to the video and
/// at least one frame long.
pub fn span_frames(start: f64, end: f64, fps: f64, frames: usize, t: usize) -> (usize, usize) {
    let scale = fps * t as f64 / frames.max(1) as f64;
    let first = ((start * scale).floor().max(0.0) as usize).min(t - 1);
    let last = ((end * scale).ceil() as usize).clamp(first + 1, t);
    (first, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pelt_backbone::{Vit, VitConfig};

    fn images(n: usize) -> ImageSet {
        ImageSet {
            pixels: (0..n * 8 * 8).map(|i| (i * 7 % 256) as u8).collect(),
            labels: (0..n).map(|i| i % 3).collect(),
            channels: 1,
            size: 8,
            max_value: 255,
        }
    }

    #[test]
    fn features_are_the_class_token_of_each_image_whatever_the_batching() {
        let vit = Vit::random(&VitConfig::tiny(), 3, Device::Cpu);
        let set = images(70);
        let all = frame_features(&vit, &set, Device::Cpu);
        assert_eq!(all.size()[0], 70);
        // Image 66 alone (a second chunk of the 64-image batches) gives the same feature.
        let one = frame_features(&vit, &set.select(&[66]), Device::Cpu);
        let diff = (all.get(66) - one.get(0)).abs().max().double_value(&[]);
        assert!(diff < 1e-5, "{diff}");
    }

    #[test]
    fn resampling_averages_equal_shares_and_spans_map_seconds_to_frames() {
        // 4 frames of dimension 2 down to 2: means of frames 0-1 and 2-3; up to 8: each repeated.
        let v = [0.0f32, 10.0, 2.0, 12.0, 4.0, 14.0, 6.0, 16.0];
        assert_eq!(resample(&v, 4, 2, 2), vec![1.0, 11.0, 5.0, 15.0]);
        let up = resample(&v, 4, 2, 8);
        assert_eq!((up.len(), &up[..4], &up[14..]), (16, &[0.0, 10.0, 0.0, 10.0][..], &[6.0, 16.0][..]));
        // 30 feature frames at 3 a second (a 10 s video) in 16 frames: 2.5 s → frame 4, 5.1 s → 9.
        assert_eq!(span_frames(2.5, 5.1, 3.0, 30, 16), (4, 9));
        // Past the video's end it is clipped; a span inside one frame keeps that frame.
        assert_eq!(span_frames(9.0, 30.0, 3.0, 30, 16), (14, 16));
        assert_eq!(span_frames(3.01, 3.02, 3.0, 30, 16), (4, 5));
    }

    #[test]
    fn batches_gather_frames_and_spans() {
        let features = Tensor::arange(10 * 2, (Kind::Float, Device::Cpu)).view([10, 2]);
        let video = |frames: Vec<usize>, start, end| ConstructedVideo {
            frames,
            class: 0,
            start,
            end,
            query: "when is a sandal shown?".into(),
        };
        let videos = vec![video(vec![3, 4, 5, 6], 1, 3), video(vec![9, 8], 0, 2)];
        let b = video_batch(&videos, &[1, 0], &features);
        assert_eq!(b.frames.size(), [2, 4, 2]);
        assert_eq!(b.frames.double_value(&[0, 1, 0]), 16.0, "video 1's second frame is image 8");
        assert_eq!(
            Vec::<i64>::try_from(b.mask.to_kind(Kind::Int64).sum_dim_intlist([1].as_slice(), false, Kind::Int64))
                .unwrap(),
            [2, 4]
        );
        assert_eq!(
            (Vec::<i64>::try_from(b.start).unwrap(), Vec::<i64>::try_from(b.last).unwrap()),
            (vec![0, 1], vec![1, 2])
        );
    }
}
