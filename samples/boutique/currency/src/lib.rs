//! The boutique's currency service: exchange rates against the euro,
//! embedded (Online Boutique's table), and conversion between any two of
//! them through EUR, exact to the nano-unit.
//!
//! The config key `rates` overrides some rates, as `USD=1.20,JPY=130.5`
//! (units of the currency per euro); a rate that does not parse makes
//! every conversion fail with a message that names it.

boutique_shared::bindings!("boutique:shop/currency-component");

use boutique::shop::types::Money;
use boutique_shared::money::Amount;
use exports::boutique::shop::currency::{CurrencyError, Guest};

/// Rates are kept in hundred-thousandths of a unit per euro.
const SCALE: i128 = 100_000;

/// Units of each currency per euro.
const RATES: &[(&str, &str)] = &[
    ("EUR", "1.0"),
    ("USD", "1.1305"),
    ("JPY", "126.40"),
    ("BGN", "1.9558"),
    ("CZK", "25.592"),
    ("DKK", "7.4609"),
    ("GBP", "0.85970"),
    ("HUF", "315.51"),
    ("PLN", "4.2996"),
    ("RON", "4.7463"),
    ("SEK", "10.5375"),
    ("CHF", "1.1360"),
    ("ISK", "136.80"),
    ("NOK", "9.8040"),
    ("HRK", "7.4210"),
    ("RUB", "74.4208"),
    ("TRY", "6.1247"),
    ("AUD", "1.6072"),
    ("BRL", "4.2682"),
    ("CAD", "1.5128"),
    ("CNY", "7.5857"),
    ("HKD", "8.8743"),
    ("IDR", "15999.40"),
    ("ILS", "4.0875"),
    ("INR", "79.4320"),
    ("KRW", "1275.05"),
    ("MXN", "21.7999"),
    ("MYR", "4.6289"),
    ("NZD", "1.6679"),
    ("PHP", "59.083"),
    ("SGD", "1.5349"),
    ("THB", "36.012"),
    ("ZAR", "16.0583"),
];

/// `1.1305` in hundred-thousandths: 113050. At most five decimals.
fn parse_rate(text: &str) -> Option<i128> {
    let (whole, fraction) = text.trim().split_once('.').unwrap_or((text.trim(), ""));
    if whole.is_empty()
        || fraction.len() > 5
        || !(whole
            .chars()
            .chain(fraction.chars())
            .all(|c| c.is_ascii_digit()))
    {
        return None;
    }
    let padded = format!("{fraction:0<5}");
    let rate = whole
        .parse::<i128>()
        .ok()?
        .checked_mul(SCALE)?
        .checked_add(padded.parse::<i128>().ok()?)?;
    (rate > 0).then_some(rate)
}

/// The rate of `code`: the config's override, else the embedded one.
fn rate(code: &str) -> Result<i128, CurrencyError> {
    let overrides = wasi::config::store::get("rates")
        .ok()
        .flatten()
        .unwrap_or_default();
    for pair in overrides.split(',').filter(|p| !p.trim().is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name.trim() == code {
            return parse_rate(value).ok_or_else(|| {
                CurrencyError::Unsupported(format!(
                    "config key 'rates' gives {code} the rate '{value}', which is not a positive decimal"
                ))
            });
        }
    }
    RATES
        .iter()
        .find(|(name, _)| *name == code)
        .and_then(|(_, value)| parse_rate(value))
        .ok_or_else(|| CurrencyError::Unsupported(format!("unsupported currency '{code}'")))
}

struct Currency;

impl Guest for Currency {
    fn get_supported_currencies() -> Vec<String> {
        RATES.iter().map(|(code, _)| code.to_string()).collect()
    }

    fn convert(amount: Money, to_code: String) -> Result<Money, CurrencyError> {
        let value = Amount {
            units: amount.units,
            nanos: amount.nanos,
        };
        if !value.is_valid() {
            return Err(CurrencyError::Unsupported(format!(
                "{} units and {} nanos do not make an amount: they need one sign, and nanos below 10^9",
                amount.units, amount.nanos
            )));
        }
        let (from, to) = (rate(&amount.currency_code)?, rate(&to_code)?);
        let converted = value.scaled(to, from).ok_or_else(|| {
            CurrencyError::Unsupported(format!(
                "{} {} is too large to convert",
                amount.units, amount.currency_code
            ))
        })?;
        Ok(Money {
            currency_code: to_code,
            units: converted.units,
            nanos: converted.nanos,
        })
    }
}

export!(Currency);
