//! The boutique's payment service. It charges only Visa and Mastercard
//! numbers that pass the Luhn check and have not expired, and answers with
//! a random transaction id; anything else is an error that says why.

boutique_shared::bindings!("boutique:shop/payment-component");

use boutique::shop::types::{CreditCard, Money};
use exports::boutique::shop::payment::{Guest, PaymentError};

/// Whether `digits` pass the Luhn check.
fn luhn(digits: &[u32]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// The card's brand, from its number's prefix and length.
fn brand(number: &str) -> &'static str {
    let prefix = |n: usize| {
        number
            .get(..n)
            .and_then(|p| p.parse::<u32>().ok())
            .unwrap_or(0)
    };
    match number.len() {
        13 | 16 | 19 if number.starts_with('4') => "visa",
        16 if (51..=55).contains(&prefix(2)) || (2221..=2720).contains(&prefix(4)) => "mastercard",
        15 if matches!(prefix(2), 34 | 37) => "amex",
        _ => "unknown",
    }
}

/// The current year and month (UTC), from the wall clock.
fn this_month() -> (i32, i32) {
    let seconds = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default();
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

struct Payment;

impl Guest for Payment {
    fn charge(_amount: Money, card: CreditCard) -> Result<String, PaymentError> {
        let number: String = card
            .number
            .chars()
            .filter(|c| !matches!(c, ' ' | '-'))
            .collect();
        let digits: Option<Vec<u32>> = number.chars().map(|c| c.to_digit(10)).collect();
        let valid = digits
            .as_deref()
            .is_some_and(|d| (12..=19).contains(&d.len()) && luhn(d));
        if !valid {
            return Err(PaymentError::InvalidCard(
                "the credit card number is not valid".into(),
            ));
        }
        let brand = brand(&number);
        if !matches!(brand, "visa" | "mastercard") {
            return Err(PaymentError::UnacceptedCard(format!(
                "sorry, we cannot process {brand} credit cards: only Visa and Mastercard are accepted"
            )));
        }
        let (year, month) = this_month();
        if (card.expiration_year, card.expiration_month) < (year, month)
            || !(1..=12).contains(&card.expiration_month)
        {
            let ending = &number[number.len() - 4..];
            return Err(PaymentError::ExpiredCard(format!(
                "your credit card (ending {ending}) expired on {}/{}",
                card.expiration_month, card.expiration_year
            )));
        }
        Ok(format!("tx-{}", boutique_shared::ids::uuid()))
    }
}

export!(Payment);
