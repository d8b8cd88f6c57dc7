pub mod channels;
pub mod fakes;
pub mod zalo {
    pub mod client;
    pub mod token;
}
