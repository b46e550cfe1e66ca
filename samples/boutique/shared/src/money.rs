//! Money arithmetic, on plain numbers so that every component can use it
//! with its own generated `money` type.
//!
//! An amount is whole units and nano-units (10^-9) of a currency, with the
//! same sign, as in `boutique:shop/types.money`. Arithmetic goes through
//! the total in nanos, as an `i128`, so it is exact.
//!
//! ```
//! use boutique_shared::money::{Amount, format};
//! let price = Amount { units: 19, nanos: 990_000_000 };
//! assert_eq!(price.times(2), Amount { units: 39, nanos: 980_000_000 });
//! assert_eq!(format("USD", price), "$19.99");
//! ```

/// Nano-units in one unit.
const NANOS: i128 = 1_000_000_000;

/// An amount of some currency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Amount {
    /// Whole units.
    pub units: i64,
    /// Nano-units, with the sign of `units`.
    pub nanos: i32,
}

impl Amount {
    /// The amount as a number of nano-units.
    pub fn total_nanos(self) -> i128 {
        i128::from(self.units) * NANOS + i128::from(self.nanos)
    }

    /// The amount of `total` nano-units, saturating at the limits of `units`.
    pub fn from_nanos(total: i128) -> Amount {
        let units = (total / NANOS).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        Amount {
            units: units as i64,
            nanos: (total % NANOS) as i32,
        }
    }

    /// This amount plus `other`.
    pub fn plus(self, other: Amount) -> Amount {
        Amount::from_nanos(self.total_nanos() + other.total_nanos())
    }

    /// This amount `count` times (saturating, far beyond any real cart).
    pub fn times(self, count: i64) -> Amount {
        Amount::from_nanos(self.total_nanos().saturating_mul(i128::from(count)))
    }

    /// Whether units and nanos have one sign and nanos are below one unit.
    pub fn is_valid(self) -> bool {
        let nanos = i128::from(self.nanos);
        nanos.abs() < NANOS
            && !(self.units > 0 && self.nanos < 0)
            && !(self.units < 0 && self.nanos > 0)
    }

    /// This amount rounded to the smallest coin of currency `code` (cents,
    /// or whole yen), halves away from zero: what a customer is shown and
    /// pays, so that a total is the sum of the prices shown.
    pub fn rounded_for(self, code: &str) -> Amount {
        let scale = 10i128.pow(9 - decimals(code));
        let total = self.total_nanos();
        let coins = (total.abs() + scale / 2) / scale;
        Amount::from_nanos(total.signum() * coins * scale)
    }

    /// This amount multiplied by `numerator / denominator`, rounded to the
    /// nearest nano-unit (halves away from zero); `None` if `denominator`
    /// is 0.
    pub fn scaled(self, numerator: i128, denominator: i128) -> Option<Amount> {
        if denominator == 0 {
            return None;
        }
        let product = self.total_nanos().checked_mul(numerator)?;
        let (quotient, remainder) = (product / denominator, product % denominator);
        let rounded = if 2 * remainder.abs() >= denominator.abs() {
            quotient + product.signum() * denominator.signum()
        } else {
            quotient
        };
        Some(Amount::from_nanos(rounded))
    }
}

/// `amount` of currency `code` for people: a symbol where the currency has a
/// well-known one, and two decimals (none for yen), as the shop shows prices.
pub fn format(code: &str, amount: Amount) -> String {
    let decimals = decimals(code);
    let total = amount.rounded_for(code).total_nanos();
    let shown = total.abs() / 10i128.pow(9 - decimals);
    let sign = if total < 0 { "-" } else { "" };
    let whole = shown / 10i128.pow(decimals);
    let number = if decimals == 0 {
        format!("{whole}")
    } else {
        format!("{whole}.{:02}", shown % 100)
    };
    match symbol(code) {
        Some(symbol) => format!("{sign}{symbol}{number}"),
        None => format!("{sign}{number} {code}"),
    }
}

/// How many decimals currency `code`'s smallest coin has.
fn decimals(code: &str) -> u32 {
    if code == "JPY" { 0 } else { 2 }
}

/// The symbol the shop shows for currency `code`, if it has one.
fn symbol(code: &str) -> Option<&'static str> {
    Some(match code {
        "USD" => "$",
        "EUR" => "€",
        "GBP" => "£",
        "JPY" => "¥",
        "CAD" => "CA$",
        "TRY" => "₺",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn amount(units: i64, nanos: i32) -> Amount {
        Amount { units, nanos }
    }

    #[test]
    fn sums_carry_nanos_into_units() {
        assert_eq!(
            amount(1, 600_000_000).plus(amount(2, 500_000_000)),
            amount(4, 100_000_000)
        );
        assert_eq!(amount(8, 990_000_000).times(3), amount(26, 970_000_000));
    }

    #[test]
    fn scaling_rounds_to_the_nearest_nano() {
        // 10 USD at 1.1305 USD per EUR is 8.845643520566... EUR.
        assert_eq!(
            amount(10, 0).scaled(100_000, 113_050),
            Some(amount(8, 845_643_521))
        );
        assert_eq!(amount(1, 0).scaled(1, 3), Some(amount(0, 333_333_333)));
        assert_eq!(amount(2, 0).scaled(1, 3), Some(amount(0, 666_666_667)));
        assert_eq!(amount(1, 0).scaled(1, 0), None);
    }

    #[test]
    fn validity_needs_one_sign_and_small_nanos() {
        assert!(amount(3, 5).is_valid());
        assert!(amount(-3, -5).is_valid());
        assert!(!amount(3, -5).is_valid());
        assert!(!amount(0, 1_000_000_000).is_valid());
    }

    #[test]
    fn rounding_goes_to_the_smallest_coin() {
        assert_eq!(
            amount(17, 682_441_397).rounded_for("EUR"),
            amount(17, 680_000_000)
        );
        assert_eq!(
            amount(7, 952_233_525).rounded_for("EUR"),
            amount(7, 950_000_000)
        );
        assert_eq!(amount(0, 995_000_000).rounded_for("USD"), amount(1, 0));
        assert_eq!(
            amount(-2, -5_000_000).rounded_for("USD"),
            amount(-2, -10_000_000)
        );
        assert_eq!(
            amount(2223, 600_000_000).rounded_for("JPY"),
            amount(2224, 0)
        );
    }

    #[test]
    fn prices_show_two_decimals_and_a_symbol() {
        assert_eq!(format("USD", amount(19, 990_000_000)), "$19.99");
        assert_eq!(format("EUR", amount(17, 684_652_808)), "€17.68");
        assert_eq!(format("JPY", amount(2223, 600_000_000)), "¥2224");
        assert_eq!(format("CHF", amount(5, 0)), "5.00 CHF");
        assert_eq!(format("USD", amount(0, 995_000_000)), "$1.00");
    }
}
