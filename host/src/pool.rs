//! Work over a fixed number of threads, results in input order: the per-photo loops of `eval`,
//! `models refine` and `models adapt`. Each item is one photo's detection and networks
//! (milliseconds to a second), so handing items out one at a time costs nothing, and the
//! thread count is the user's (`--threads`), not the machine's.

use indicatif::ProgressBar;
use rayon::prelude::*;

/// `f` of every item on `threads` threads (at least one), in `items`' order, ticking `pb` once
/// per item.
pub fn map<T: Sync, R: Send>(
    items: &[T],
    threads: usize,
    pb: &ProgressBar,
    f: impl Fn(&T) -> R + Sync,
) -> Vec<R> {
    let each = |item: &T| {
        let r = f(item);
        pb.inc(1);
        r
    };
    match rayon::ThreadPoolBuilder::new()
        .num_threads(threads.max(1))
        .build()
    {
        Ok(pool) => pool.install(|| items.par_iter().with_max_len(1).map(each).collect()),
        // No threads to be had (a process limit): the work still gets done, here.
        Err(_) => items.iter().map(each).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_come_back_in_order_and_each_item_once() {
        let items: Vec<u32> = (0..257).collect();
        let pb = ProgressBar::hidden();
        let out = map(&items, 3, &pb, |x| x * 2);
        assert_eq!(out, items.iter().map(|x| x * 2).collect::<Vec<_>>());
        assert_eq!(pb.position(), 257);
    }

    #[test]
    fn zero_threads_means_one() {
        let pb = ProgressBar::hidden();
        assert_eq!(map(&[1, 2, 3], 0, &pb, |x| x + 1), vec![2, 3, 4]);
    }
}
