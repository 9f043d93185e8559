//! Messages between the platform and a learner.

crate::string_enum! {
    /// Where a message was sent or received.
    pub enum Channel { Sms = "sms", WebChat = "web_chat", Email = "email", Whatsapp = "whatsapp" }
}

crate::string_enum! {
    /// Who or what produced a message.
    pub enum MessageType { AiAgent = "ai_agent", LiveChat = "live_chat", Campaign = "campaign" }
}

crate::string_enum! {
    /// `incoming` is from the learner; `outgoing` is from the AI agent, a live-chat agent or a campaign.
    pub enum Direction { Incoming = "incoming", Outgoing = "outgoing" }
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
