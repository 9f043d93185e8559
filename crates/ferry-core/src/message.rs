//! Messages between the platform and a learner.

crate::string_enum! {
    /// Where a message was sent or received.
    pub enum Channel {
        /// Text message.
        Sms = "sms",
        /// The chat widget on the institution's website.
        WebChat = "web_chat",
        /// Email.
        Email = "email",
        /// WhatsApp.
        Whatsapp = "whatsapp",
        /// A phone call, from a bulk calls file (seed 003).
        Voice = "voice",
    }
}

crate::string_enum! {
    /// Who or what produced a message.
    pub enum MessageType {
        /// The AI agent's conversation.
        AiAgent = "ai_agent",
        /// A person answering in live chat.
        LiveChat = "live_chat",
        /// A campaign sent to many contacts.
        Campaign = "campaign",
        /// A phone call between an agent and the learner.
        Call = "call",
    }
}

crate::string_enum! {
    /// `incoming` is from the learner; `outgoing` is from the AI agent, a live-chat agent or a campaign.
    pub enum Direction {
        /// From the learner.
        Incoming = "incoming",
        /// To the learner.
        Outgoing = "outgoing",
    }
}

/// The longest message body Ferry stores, in bytes.
pub const MAX_BODY_BYTES: usize = 20_000;

impl Channel {
    /// The name people see.
    pub fn label(self) -> &'static str {
        match self {
            Channel::Sms => "SMS",
            Channel::WebChat => "Web chat",
            Channel::Email => "Email",
            Channel::Whatsapp => "WhatsApp",
            Channel::Voice => "Voice",
        }
    }
}

impl MessageType {
    /// The name people see.
    pub fn label(self) -> &'static str {
        match self {
            MessageType::AiAgent => "AI agent",
            MessageType::LiveChat => "Live chat",
            MessageType::Campaign => "Campaign",
            MessageType::Call => "Call",
        }
    }
}

impl Direction {
    /// The name people see.
    pub fn label(self) -> &'static str {
        match self {
            Direction::Incoming => "Incoming",
            Direction::Outgoing => "Outgoing",
        }
    }
}
