//! The normal tail and the two-proportion z-test used by spike rules.

/// Complementary error function, Chebyshev fit (Numerical Recipes `erfcc`);
/// fractional error below 1.2e-7 for every x.
pub fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98
                                + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let ans = t * poly.exp();
    if x >= 0.0 {
        ans
    } else {
        2.0 - ans
    }
}

/// P(Z > z) for a standard normal Z.
pub fn normal_upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// Result of a one-sided two-proportion z-test (H1: rate 1 > rate 0).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TwoProportion {
    pub rate1: f64,
    pub rate0: f64,
    pub z: f64,
    pub p_value: f64,
}

/// Pooled two-proportion z-test of `x1/n1` against `x0/n0`. `None` when a
/// sample is empty or the pooled rate is 0 or 1 (no variance: the rates are
/// equal). Successes above the sample size are clamped to it.
pub fn two_proportion_z(x1: u64, n1: u64, x0: u64, n0: u64) -> Option<TwoProportion> {
    if n1 == 0 || n0 == 0 {
        return None;
    }
    let (x1, x0) = (x1.min(n1) as f64, x0.min(n0) as f64);
    let (n1, n0) = (n1 as f64, n0 as f64);
    let rate1 = x1 / n1;
    let rate0 = x0 / n0;
    let pooled = (x1 + x0) / (n1 + n0);
    let se = (pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0)).sqrt();
    if se.is_nan() || se <= 0.0 {
        return None;
    }
    let z = (rate1 - rate0) / se;
    Some(TwoProportion {
        rate1,
        rate0,
        z,
        p_value: normal_upper_tail(z),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(actual: f64, expected: f64, tol: f64) {
        assert!(
            (actual - expected).abs() <= tol,
            "{actual} != {expected} ± {tol}"
        );
    }

    #[test]
    fn upper_tail_matches_tables() {
        // The fit's fractional error is < 1.2e-7.
        let rel = |z: f64, expected: f64| close(normal_upper_tail(z) / expected, 1.0, 1.2e-7);
        rel(1.96, 0.024_997_895_148);
        rel(2.326, 0.010_009_275_341);
        rel(3.0, 0.001_349_898_032);
        close(normal_upper_tail(1.96), 0.024_997_9, 1e-7);
        close(normal_upper_tail(3.0), 0.001_349_9, 1e-7);
        close(normal_upper_tail(0.0), 0.5, 1e-7);
        close(normal_upper_tail(1.0), 0.158_655_254, 1e-7);
        close(normal_upper_tail(-1.96), 0.975_002_105, 1e-7);
        // Fractional accuracy holds far in the tail too.
        close(normal_upper_tail(5.0) / 2.866_515_7e-7, 1.0, 1e-6);
    }

    #[test]
    fn erfc_is_symmetric_and_bounded() {
        close(erfc(0.0), 1.0, 1.2e-7);
        for i in -60..=60 {
            let x = f64::from(i) / 10.0;
            close(erfc(x) + erfc(-x), 2.0, 2.4e-7);
            assert!((0.0..=2.0).contains(&erfc(x)));
        }
    }

    #[test]
    fn two_proportion_by_hand() {
        // 10/40 vs 108/900: pooled p = 118/940 = 0.1255319;
        // se = sqrt(0.1255319 × 0.8744681 × (1/40 + 1/900))
        //    = sqrt(0.1097737 × 0.0261111) = 0.0535379;
        // z = (0.25 − 0.12) / 0.0535379 = 2.42818; p = 0.0075873.
        let t = two_proportion_z(10, 40, 108, 900).unwrap();
        close(t.rate1, 0.25, 1e-12);
        close(t.rate0, 0.12, 1e-12);
        close(t.z, 2.428_184_134, 1e-8);
        close(t.p_value, 0.007_587_318, 1e-8);
        assert!(two_proportion_z(0, 40, 0, 900).is_none());
        assert!(two_proportion_z(1, 0, 0, 900).is_none());
        assert!(two_proportion_z(40, 40, 900, 900).is_none());
    }
}
