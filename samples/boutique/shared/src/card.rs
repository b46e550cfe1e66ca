//! The payment rules, as pure functions: which card numbers the shop takes
//! (Visa and Mastercard that pass the Luhn check), and whether a card has
//! expired in a given month.
//!
//! ```
//! use boutique_shared::card::{Brand, Problem, check};
//! assert_eq!(check("4432-8015-6152-0454", (2030, 1), (2026, 11)), Ok(Brand::Visa));
//! assert_eq!(check("4432-8015-6152-0454", (2026, 10), (2026, 11)), Err(Problem::Expired));
//! ```

/// A card's brand, from its number's prefix and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Brand {
    /// Starts with 4; 13, 16 or 19 digits.
    Visa,
    /// 51 to 55, or 2221 to 2720; 16 digits.
    Mastercard,
    /// 34 or 37; 15 digits.
    Amex,
    /// Anything else.
    Unknown,
}

impl Brand {
    /// The brand's name, as the error messages say it.
    pub fn name(self) -> &'static str {
        match self {
            Brand::Visa => "Visa",
            Brand::Mastercard => "Mastercard",
            Brand::Amex => "American Express",
            Brand::Unknown => "unknown",
        }
    }
}

/// Why a card is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Not 12 to 19 digits (spaces and dashes aside), or fails Luhn.
    Invalid,
    /// A brand the shop does not take.
    Unaccepted(Brand),
    /// Its expiry month is before this month, or not a month.
    Expired,
}

/// The digits of `number`, without the spaces and dashes people type.
pub fn digits(number: &str) -> String {
    number.chars().filter(|c| !matches!(c, ' ' | '-')).collect()
}

/// Whether the card `number`, expiring at the end of `expiry` (year,
/// month), may be charged in month `now`; its brand if so.
pub fn check(number: &str, expiry: (i32, i32), now: (i32, i32)) -> Result<Brand, Problem> {
    let number = digits(number);
    let values: Option<Vec<u32>> = number.chars().map(|c| c.to_digit(10)).collect();
    if !values.is_some_and(|d| (12..=19).contains(&d.len()) && luhn(&d)) {
        return Err(Problem::Invalid);
    }
    let brand = brand(&number);
    if !matches!(brand, Brand::Visa | Brand::Mastercard) {
        return Err(Problem::Unaccepted(brand));
    }
    if !(1..=12).contains(&expiry.1) || expiry < now {
        return Err(Problem::Expired);
    }
    Ok(brand)
}

/// Whether `digits` pass the Luhn check.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| match (i % 2, d * 2) {
            (1, doubled) if doubled > 9 => doubled - 9,
            (1, doubled) => doubled,
            _ => d,
        })
        .sum();
    sum.is_multiple_of(10)
}

fn brand(number: &str) -> Brand {
    let prefix = |n: usize| {
        number
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match number.len() {
        13 | 16 | 19 if number.starts_with('4') => Brand::Visa,
        16 if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) => {
            Brand::Mastercard
        }
        15 if matches!(prefix(2), 34 | 37) => Brand::Amex,
        _ => Brand::Unknown,
    }
}

/// The year and month (UTC) of `seconds` after the Unix epoch.
pub fn month_of(seconds: i64) -> (i32, i32) {
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = seconds.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year as i32, month as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: (i32, i32) = (2026, 11);

    #[test]
    fn visa_and_mastercard_that_pass_luhn_are_taken() {
        assert_eq!(
            check("4432-8015-6152-0454", (2027, 1), NOW),
            Ok(Brand::Visa)
        );
        assert_eq!(
            check("4111 1111 1111 1111", (2027, 1), NOW),
            Ok(Brand::Visa)
        );
        assert_eq!(
            check("5555555555554444", (2027, 1), NOW),
            Ok(Brand::Mastercard)
        );
        assert_eq!(
            check("2223003122003222", (2027, 1), NOW),
            Ok(Brand::Mastercard)
        );
    }

    #[test]
    fn other_numbers_are_refused_with_the_reason() {
        assert_eq!(
            check("4111-1111-1111-1112", (2027, 1), NOW),
            Err(Problem::Invalid)
        );
        assert_eq!(
            check("4111-x111-1111-1111", (2027, 1), NOW),
            Err(Problem::Invalid)
        );
        assert_eq!(check("42", (2027, 1), NOW), Err(Problem::Invalid));
        assert_eq!(check("", (2027, 1), NOW), Err(Problem::Invalid));
        assert_eq!(
            check("3782-822463-10005", (2027, 1), NOW),
            Err(Problem::Unaccepted(Brand::Amex))
        );
        assert_eq!(
            check("6011111111111117", (2027, 1), NOW),
            Err(Problem::Unaccepted(Brand::Unknown))
        );
    }

    #[test]
    fn a_card_is_good_through_its_expiry_month() {
        assert_eq!(check("4111111111111111", (2026, 11), NOW), Ok(Brand::Visa));
        assert_eq!(
            check("4111111111111111", (2026, 10), NOW),
            Err(Problem::Expired)
        );
        assert_eq!(
            check("4111111111111111", (2025, 12), NOW),
            Err(Problem::Expired)
        );
        assert_eq!(
            check("4111111111111111", (2030, 13), NOW),
            Err(Problem::Expired)
        );
    }

    #[test]
    fn months_come_from_the_epoch() {
        assert_eq!(month_of(0), (1970, 1));
        // 2026-11-23T03:00:00Z and 2024-02-29T12:00:00Z.
        assert_eq!(month_of(1_795_402_800), (2026, 11));
        assert_eq!(month_of(1_709_208_000), (2024, 2));
        assert_eq!(month_of(-1), (1969, 12));
    }
}
