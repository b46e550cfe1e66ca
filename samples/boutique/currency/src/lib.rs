//! The boutique's currency service: exchange rates against the euro,
//! embedded (Online Boutique's table), and conversion between any two of
//! them through EUR, exact to the nano-unit.
//!
//! The config key `rates` overrides some rates, as `USD=1.20,JPY=130.5`
//! (units of the currency per euro); a rate that does not parse makes
//! every conversion fail with a message that names it. The table is parsed
//! once per instance (`boutique_shared::rates`).

boutique_shared::bindings!("boutique:shop/currency-component");

use boutique::shop::types::Money;
use boutique_shared::money::Amount;
use boutique_shared::rates::Rates;
use exports::boutique::shop::currency::{CurrencyError, Guest};
use std::sync::OnceLock;

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

/// The rates, parsed once per instance: the embedded table with the
/// config's overrides, or why they do not parse.
fn rates() -> &'static Result<Rates, String> {
    static RATES_NOW: OnceLock<Result<Rates, String>> = OnceLock::new();
    RATES_NOW.get_or_init(|| {
        let overrides = wasi::config::store::get("rates")
            .ok()
            .flatten()
            .unwrap_or_default();
        Rates::parse(RATES, &overrides)
    })
}

/// The rate of `code`.
fn rate(code: &str) -> Result<i128, CurrencyError> {
    let rates = rates()
        .as_ref()
        .map_err(|why| CurrencyError::Unsupported(why.clone()))?;
    rates
        .of(code)
        .ok_or_else(|| CurrencyError::Unsupported(format!("unsupported currency '{code}'")))
}

struct Currency;

impl Guest for Currency {
    fn get_supported_currencies() -> Vec<String> {
        match rates() {
            Ok(rates) => rates.codes().map(str::to_string).collect(),
            Err(_) => Vec::new(),
        }
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
