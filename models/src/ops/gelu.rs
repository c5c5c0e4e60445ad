//! The exact GELU, `0.5 * x * (1 + erf(x / sqrt(2)))`, as facegate's own operator.
//!
//! Why: it is EdgeFace's activation (18 of them per face) and tract-core runs it as an
//! element-wise loop around tract-linalg's `erf`. Where tract-core is built for size (the door
//! profile wants that: tract-core is 40% of the door's code), that loop is no longer
//! vectorised and was 9.9% of the door's samples (docs/PERFORMANCE.md). Here the loop is
//! facegate's code, always built at full optimisation, and it calls the same `erf` kernel in
//! the same order of operations as tract-core's `GeluExact`, so its output is bit for bit the
//! same.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::GeluExact;
use tract_onnx::tract_core::tract_linalg::routines::Func;

/// The exact GELU over an f32 tensor of any shape.
#[derive(Debug, Clone, Default, Hash, PartialEq, Eq)]
pub struct Gelu;

impl Op for Gelu {
    fn name(&self) -> StaticName {
        "facegate.Gelu".into()
    }

    op_as_typed_op!();
}

impl EvalOp for Gelu {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let input = args_1!(inputs);
        let plain = input.try_as_plain_ram()?;
        let xs = plain.as_slice::<f32>()?;
        let y = super::written_f32(input.shape(), |out| gelu(xs, out))?;
        Ok(tvec!(y))
    }
}

impl TypedOp for Gelu {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "Gelu wants one input");
        ensure!(
            inputs[0].datum_type == f32::datum_type(),
            "Gelu is f32 only"
        );
        Ok(tvec!(f32::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `out = gelu(xs)`, the three steps of tract-core's `GeluExact` for f32: scale, tract-linalg's
/// `erf` on the scaled values, then `(x * 0.5) * (erf + 1)`.
fn gelu(xs: &[f32], out: &mut [f32]) -> TractResult<()> {
    let c = 2f32.sqrt().recip();
    for (s, &x) in out.iter_mut().zip(xs) {
        *s = x * c;
    }
    Func::Erf.ew_f32()?.run(out)?;
    for (e, &x) in out.iter_mut().zip(xs) {
        *e = (x * 0.5) * (*e + 1.0);
    }
    Ok(())
}

/// Replaces every f32 `GeluExact` of an optimised `model` with [`Gelu`]; returns how many.
pub fn swap_gelus(model: &mut TypedModel) -> TractResult<usize> {
    super::swap_each(model, |model, node| {
        let is_gelu = node
            .op_as::<ElementWiseOp>()
            .is_some_and(|op| op.0.is::<GeluExact>() && op.1.is_none());
        if !is_gelu {
            return Ok(None);
        }
        let f32_in = model.outlet_fact(node.inputs[0])?.datum_type == f32::datum_type();
        Ok(f32_in.then_some(Gelu))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A model of one GELU as tract builds it from the formula, optimised.
    fn tract_gelu(len: usize) -> TypedModel {
        let mut model = TypedModel::default();
        let src = model.add_source("x", f32::fact([len])).expect("tract");
        let out = model
            .wire_node("gelu", ElementWiseOp(Box::new(GeluExact {}), None), &[src])
            .expect("tract");
        model.select_output_outlets(&out).expect("tract");
        model.into_optimized().expect("tract")
    }

    fn run(model: TypedModel, input: &Tensor) -> Tensor {
        model
            .into_runnable()
            .expect("tract")
            .run(tvec![input.clone().into()])
            .expect("tract")
            .remove(0)
            .into_tensor()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        /// Swapped in, the plan computes exactly what tract's own GELU computes.
        #[test]
        fn equals_tracts_gelu_bit_for_bit(xs in proptest::collection::vec(-12f32..12.0, 1..3000)) {
            let input = tensor1(&xs);
            let want = run(tract_gelu(xs.len()), &input);
            let mut swapped = tract_gelu(xs.len());
            prop_assert_eq!(swap_gelus(&mut swapped).expect("tract"), 1);
            prop_assert_eq!(run(swapped, &input), want);
        }
    }
}
