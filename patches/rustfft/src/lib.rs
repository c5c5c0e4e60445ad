//! rustfft's interface, as tract uses it, without rustfft's transforms.
//!
//! tract-core reaches rustfft only from its DFT and STFT operators, which no facegate network
//! has; the real crate's planners were 1.1 MiB of the door's code. A plan made here answers
//! every transform with NaN: a network that used one would give non-finite outputs, which
//! facegate's runners refuse, and facegate refuses such a network when it loads it
//! (`facegate_models::ops::optimised`). The interface follows rustfft 6.4 so that the
//! workspace's `[patch.crates-io]` can put this crate in its place.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::sync::Arc;

pub use num_complex;
pub use num_traits;

use num_complex::Complex;
use num_traits::{FromPrimitive, Signed};

/// The numbers rustfft transforms (as rustfft defines them).
pub trait FftNum: Copy + FromPrimitive + Signed + Sync + Send + Debug + 'static {}

impl<T> FftNum for T where T: Copy + FromPrimitive + Signed + Sync + Send + Debug + 'static {}

/// Forward or inverse transform.
#[derive(Copy, Clone, PartialEq, Eq, Debug)]
pub enum FftDirection {
    /// From samples to frequencies.
    Forward,
    /// From frequencies to samples.
    Inverse,
}

/// The length a plan transforms.
pub trait Length {
    /// The transform's length.
    fn len(&self) -> usize;

    /// Whether the length is zero.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The direction a plan transforms in.
pub trait Direction {
    /// The transform's direction.
    fn fft_direction(&self) -> FftDirection;
}

/// A planned transform.
pub trait Fft<T: FftNum>: Length + Direction + Sync + Send {
    /// Transforms `buffer` in place: here, fills it with NaN (see the crate's documentation).
    fn process(&self, buffer: &mut [Complex<T>]) {
        self.process_with_scratch(buffer, &mut []);
    }

    /// As [`Fft::process`]; `scratch` is not used.
    fn process_with_scratch(&self, buffer: &mut [Complex<T>], scratch: &mut [Complex<T>]);

    /// Scratch space [`Fft::process_with_scratch`] wants: none.
    fn get_inplace_scratch_len(&self) -> usize {
        0
    }
}

/// Makes plans, as rustfft's planner does.
#[derive(Debug)]
pub struct FftPlanner<T> {
    numbers: PhantomData<T>,
}

impl<T: FftNum> Default for FftPlanner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: FftNum> FftPlanner<T> {
    /// A planner.
    pub fn new() -> Self {
        Self {
            numbers: PhantomData,
        }
    }

    /// A plan for transforms of `len` values in `direction`.
    pub fn plan_fft(&mut self, len: usize, direction: FftDirection) -> Arc<dyn Fft<T>> {
        Arc::new(NotCarried {
            len,
            direction,
            numbers: PhantomData,
        })
    }

    /// A plan for forward transforms of `len` values.
    pub fn plan_fft_forward(&mut self, len: usize) -> Arc<dyn Fft<T>> {
        self.plan_fft(len, FftDirection::Forward)
    }

    /// A plan for inverse transforms of `len` values.
    pub fn plan_fft_inverse(&mut self, len: usize) -> Arc<dyn Fft<T>> {
        self.plan_fft(len, FftDirection::Inverse)
    }
}

/// The only plan: it answers NaN, so a network that transforms is refused by its outputs.
struct NotCarried<T> {
    len: usize,
    direction: FftDirection,
    numbers: PhantomData<fn() -> T>,
}

impl<T> Length for NotCarried<T> {
    fn len(&self) -> usize {
        self.len
    }
}

impl<T> Direction for NotCarried<T> {
    fn fft_direction(&self) -> FftDirection {
        self.direction
    }
}

impl<T: FftNum> Fft<T> for NotCarried<T> {
    fn process_with_scratch(&self, buffer: &mut [Complex<T>], _scratch: &mut [Complex<T>]) {
        // Integers have no NaN: zero, which no runner could take for a transform either.
        let nan = T::from_f64(f64::NAN).unwrap_or_else(T::zero);
        buffer.fill(Complex::new(nan, nan));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_transform_answers_nan() {
        let plan = FftPlanner::<f32>::new().plan_fft_forward(4);
        assert_eq!(
            (plan.len(), plan.fft_direction()),
            (4, FftDirection::Forward)
        );
        let mut values = vec![Complex::new(1.0f32, 0.0); 8];
        plan.process(&mut values);
        assert!(values.iter().all(|c| c.re.is_nan() && c.im.is_nan()));
        let inverse = FftPlanner::<f64>::new().plan_fft_inverse(2);
        assert_eq!(inverse.fft_direction(), FftDirection::Inverse);
    }
}
