//! What each show is entitled to at a moment, the yardstick the share
//! figures are measured against: the capacity is poured into the shows
//! that have work in proportion to their subscription sizes (equally if
//! none has a size), none past its burst or past what it could run;
//! whatever a capped show cannot take goes on to the others (water-filling).
//! That is the outcome docs/scheduling.md promises, computed independently
//! of the scheduler, so the figures check the policy rather than restate it.

/// One show's claim at a moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Claim {
    /// Its subscription size; only proportions matter.
    pub weight: f64,
    /// The most it could hold: the lesser of its burst and its demand
    /// (cores running plus cores its ready frames ask for).
    pub cap: f64,
}

/// Entitled cores per claim, in order.
pub fn entitlements(capacity: f64, claims: &[Claim]) -> Vec<f64> {
    let mut out = vec![0.0; claims.len()];
    let mut active: Vec<usize> = (0..claims.len()).filter(|&i| claims[i].cap > 0.0).collect();
    let mut left = capacity.max(0.0);
    // Shows without a size share equally once the sized ones are served,
    // or from the start when no show has a size.
    let mut equal = active.iter().all(|&i| claims[i].weight <= 0.0);
    while !active.is_empty() && left > 1e-9 {
        let w = |i: usize| {
            if equal {
                1.0
            } else {
                claims[i].weight.max(0.0)
            }
        };
        let total: f64 = active.iter().map(|&i| w(i)).sum();
        if total <= 0.0 {
            equal = true;
            continue;
        }
        let share = |i: usize| left * w(i) / total;
        let capped: Vec<usize> = active
            .iter()
            .copied()
            .filter(|&i| share(i) >= claims[i].cap - out[i])
            .collect();
        if capped.is_empty() {
            for &i in &active {
                out[i] += share(i);
            }
            break;
        }
        for &i in &capped {
            left -= claims[i].cap - out[i];
            out[i] = claims[i].cap;
        }
        active.retain(|i| !capped.contains(i));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn c(weight: f64, cap: f64) -> Claim {
        Claim { weight, cap }
    }

    #[test]
    fn proportional_then_capped() {
        let e = entitlements(100.0, &[c(50.0, 1e9), c(30.0, 1e9), c(20.0, 1e9)]);
        assert_eq!(e, vec![50.0, 30.0, 20.0]);
        // The third can only take 5: the rest goes 5:3 to the others.
        let e = entitlements(100.0, &[c(50.0, 1e9), c(30.0, 1e9), c(20.0, 5.0)]);
        assert!(
            (e[0] - 59.375).abs() < 1e-9 && (e[1] - 35.625).abs() < 1e-9 && e[2] == 5.0,
            "{e:?}"
        );
        // No sizes: equal; a show without work gets nothing.
        assert_eq!(
            entitlements(90.0, &[c(0.0, 1e9), c(0.0, 1e9), c(0.0, 0.0)]),
            vec![45.0, 45.0, 0.0]
        );
        // Sized shows first; the unsized one takes what they leave.
        assert_eq!(
            entitlements(100.0, &[c(10.0, 30.0), c(0.0, 1e9)]),
            vec![30.0, 70.0]
        );
    }

    proptest! {
        #[test]
        fn never_past_cap_or_capacity(
            cap in 0.0f64..1000.0,
            claims in prop::collection::vec((0.0f64..100.0, 0.0f64..500.0), 0..8),
        ) {
            let claims: Vec<Claim> =
                claims.into_iter().map(|(weight, cap)| Claim { weight, cap }).collect();
            let e = entitlements(cap, &claims);
            let sum: f64 = e.iter().sum();
            prop_assert!(sum <= cap + 1e-6);
            for (x, cl) in e.iter().zip(&claims) {
                prop_assert!(*x >= 0.0 && *x <= cl.cap + 1e-6);
            }
            // Capacity is left over only when every show is at its cap.
            let demand: f64 = claims.iter().map(|c| c.cap).sum();
            prop_assert!(sum >= cap.min(demand) - 1e-6);
        }
    }
}
