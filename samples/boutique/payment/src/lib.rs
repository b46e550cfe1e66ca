//! The boutique's payment service. It charges only Visa and Mastercard
//! numbers that pass the Luhn check and have not expired (the rules are in
//! `boutique_shared::card`), and answers with a random transaction id;
//! anything else is an error that says why.

boutique_shared::bindings!("boutique:shop/payment-component");

use boutique::shop::types::{CreditCard, Money};
use boutique_shared::card::{Problem, check, digits, month_of};
use exports::boutique::shop::payment::{Guest, PaymentError};

struct Payment;

impl Guest for Payment {
    fn charge(_amount: Money, card: CreditCard) -> Result<String, PaymentError> {
        let seconds = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let expiry = (card.expiration_year, card.expiration_month);
        match check(&card.number, expiry, month_of(seconds)) {
            Ok(_) => Ok(format!("tx-{}", boutique_shared::ids::uuid())),
            Err(Problem::Invalid) => Err(PaymentError::InvalidCard(
                "the credit card number is not valid".into(),
            )),
            Err(Problem::Unaccepted(brand)) => Err(PaymentError::UnacceptedCard(format!(
                "sorry, we cannot process {} credit cards: only Visa and Mastercard are accepted",
                brand.name()
            ))),
            Err(Problem::Expired) => {
                let number = digits(&card.number);
                let ending = &number[number.len().saturating_sub(4)..];
                Err(PaymentError::ExpiredCard(format!(
                    "your credit card (ending {ending}) expired on {}/{}",
                    card.expiration_month, card.expiration_year
                )))
            }
        }
    }
}

export!(Payment);
