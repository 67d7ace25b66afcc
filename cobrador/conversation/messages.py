"""Everything the bot says, in Spanish and English.

Short, clear, kind and respectful (../shared/design/compliance.md): no
threats, no pressure words, no debt detail before verification. Every key
exists in both languages with the same placeholders; tests enforce it.
Placeholders are filled with already formatted values (money and dates come
from `cobrador.language.format`).
"""

from __future__ import annotations

import string

MESSAGES: dict[str, dict[str, str]] = {
    # --- greeting and identification ---------------------------------------
    "greet_unknown": {
        "es": "¡Hola! Soy el asistente virtual de {company}. ¿En qué te puedo ayudar?",
        "en": "Hi! This is the virtual assistant of {company}. How can I help you?",
    },
    "greet_known": {
        "es": "¡Hola! Soy el asistente virtual de {company} y te escribo de parte de {creditor}.",
        "en": "Hi! This is the virtual assistant of {company}, writing on behalf of {creditor}.",
    },
    "greet_again": {
        "es": "¡Hola de nuevo! ¿En qué te puedo ayudar?",
        "en": "Hi again! How can I help you?",
    },
    "debt_collector_disclosure": {
        "es": "Este mensaje es de un despacho de cobranza.",
        "en": "This is a communication from a debt collector.",
    },
    # --- verification --------------------------------------------------------
    "verify_intro": {
        "es": "Para proteger tu información, primero necesito confirmar que hablo con la persona correcta.",
        "en": "To protect your information, I first need to confirm I'm talking to the right person.",
    },
    "ask_reference": {
        "es": "¿Me compartes tu número de cuenta o referencia?",
        "en": "Could you share your account number or reference?",
    },
    "ask_name": {
        "es": "¿Me dices tu nombre completo?",
        "en": "Could you tell me your full name?",
    },
    "ask_identifier": {
        "es": "Gracias. ¿Me confirmas los últimos 4 dígitos de tu cuenta o tu año de nacimiento?",
        "en": "Thanks. Could you confirm the last 4 digits of your account or your year of birth?",
    },
    "reference_unknown": {
        "es": "No encontré esa referencia. ¿La puedes revisar y escribirla de nuevo?",
        "en": "I couldn't find that reference. Could you check it and type it again?",
    },
    "verify_retry": {
        "es": "Esos datos no coinciden con nuestros registros. Intentemos de nuevo.",
        "en": "Those details don't match our records. Let's try again.",
    },
    "verify_failed": {
        "es": "No pude confirmar tu identidad, así que no puedo compartir detalles de la cuenta por aquí. "
        "Si quieres, te comunico con una persona de nuestro equipo. ¿Te parece?",
        "en": "I couldn't confirm your identity, so I can't share account details here. "
        "If you like, I can connect you with a person on our team. Would you like that?",
    },
    "verified": {
        "es": "¡Gracias, {name}! Ya confirmé tu identidad.",
        "en": "Thank you, {name}! Your identity is confirmed.",
    },
    # --- balance and the first message structure ----------------------------
    "balance_line": {
        "es": "• {product} con {creditor} (terminación {last4}): saldo de {balance} al {as_of}.",
        "en": "• {product} with {creditor} (ending in {last4}): balance of {balance} as of {as_of}.",
    },
    "balance_due": {
        "es": "  Vence el {due}.",
        "en": "  Due on {due}.",
    },
    "balance_overdue": {
        "es": "  Venció el {due} ({days} días de atraso).",
        "en": "  It was due on {due} ({days} days past due).",
    },
    "balance_disputed": {
        "es": "  En aclaración: no te cobraremos mientras se revisa.",
        "en": "  Under dispute: no collection while it is reviewed.",
    },
    "balance_promise": {
        "es": "  Tienes un compromiso de pago de {amount} para el {date}.",
        "en": "  You have a promise to pay {amount} on {date}.",
    },
    "balance_plan": {
        "es": "  Tu plan de pagos sigue con {amount} el {date}.",
        "en": "  Your payment plan continues with {amount} on {date}.",
    },
    "balance_header": {
        "es": "Esto es lo que tienes pendiente:",
        "en": "Here is what you have pending:",
    },
    "no_open_accounts": {
        "es": "No tienes saldos pendientes con nosotros. ¡Gracias!",
        "en": "You have no pending balances with us. Thank you!",
    },
    "how_to_pay_link": {
        "es": "Puedes pagar en línea aquí: {link}",
        "en": "You can pay online here: {link}",
    },
    "ask_when": {
        "es": "¿Qué día podrías hacer tu pago?",
        "en": "What day could you make your payment?",
    },
    # --- payment methods and identity ------------------------------------------
    "methods_header": {
        "es": "Los pagos se hacen solo a {creditor}:",
        "en": "Payments go only to {creditor}:",
    },
    "methods_link": {"es": "• En línea: {link}", "en": "• Online: {link}"},
    "methods_bank": {"es": "• Transferencia a {bank}: {reference}", "en": "• Bank transfer to {bank}: {reference}"},
    "methods_stores": {"es": "• En tiendas: {stores}", "en": "• In stores: {stores}"},
    "methods_need_verification": {
        "es": "Para darte los datos de pago de tu cuenta necesito confirmar tu identidad.",
        "en": "To give you the payment details of your account I need to confirm your identity.",
    },
    "identity": {
        "es": "Te escribe {company}, despacho de cobranza que trabaja para {legal_name}. "
        "Puedes verificarlo por tu cuenta: {contact}. Los pagos se hacen solo a {creditor}, nunca a una persona.",
        "en": "This is {company}, a collection agency working for {legal_name}. "
        "You can verify it independently: {contact}. Payments go only to {creditor}, never to an individual.",
    },
    "identity_unknown": {
        "es": "Te escribe {company}, un servicio de cobranza. No compartimos información de cuentas sin confirmar "
        "la identidad, y los pagos se hacen solo al acreedor, nunca a una persona.",
        "en": "This is {company}, a collection service. We never share account information without confirming "
        "identity, and payments go only to the creditor, never to an individual.",
    },
    "bot_challenge": {
        "es": "Sí, soy un asistente automático de {company}. Si prefieres hablar con una persona, "
        "escribe «asesor» y te comunico ({hours}).",
        "en": "Yes, I'm an automated assistant of {company}. If you'd rather talk to a person, "
        'type "agent" and I\'ll connect you ({hours}).',
    },
    # --- promise to pay ------------------------------------------------------------
    "which_account": {
        "es": "¿Para cuál cuenta? Responde con el número:",
        "en": "Which account? Reply with the number:",
    },
    "account_option": {
        "es": "{n}) {product} con {creditor}, terminación {last4}",
        "en": "{n}) {product} with {creditor}, ending in {last4}",
    },
    "promise_ask_date": {
        "es": "¿Qué día podrías pagar?",
        "en": "What day could you pay?",
    },
    "promise_ask_amount": {
        "es": "¿Cuánto podrías pagar ese día? Tu saldo es de {balance}.",
        "en": "How much could you pay that day? Your balance is {balance}.",
    },
    "promise_date_past": {
        "es": "Esa fecha ya pasó. ¿Qué día podrías pagar?",
        "en": "That date has already passed. What day could you pay?",
    },
    "promise_beyond_horizon": {
        "es": "Esa fecha queda muy lejos: puedo registrar compromisos hasta el {limit}. "
        "Si lo necesitas, podemos armar un plan de pagos. ¿Te ayudo con un plan?",
        "en": "That date is too far out: I can record promises up to {limit}. "
        "If you need it, we can set up a payment plan. Shall I help you with a plan?",
    },
    "promise_amount_invalid": {
        "es": "El monto debe ser mayor a cero y hasta tu saldo de {balance}. ¿Cuánto podrías pagar?",
        "en": "The amount must be above zero and up to your balance of {balance}. How much could you pay?",
    },
    "promise_confirm": {
        "es": "¿Confirmas {amount} el {date}?",
        "en": "Do you confirm {amount} on {date}?",
    },
    "promise_recorded": {
        "es": "Listo, quedó registrado tu compromiso: {amount} el {date}. Te recordaremos un día antes. ¡Gracias!",
        "en": "Done, your promise is recorded: {amount} on {date}. We'll remind you the day before. Thank you!",
    },
    "promise_retry": {
        "es": "Sin problema. ¿Qué día y qué monto prefieres?",
        "en": "No problem. What day and amount would you prefer?",
    },
    # --- plans ------------------------------------------------------------------------
    "hardship_empathy": {
        "es": "Lamento lo que estás pasando. Busquemos juntos una opción que te acomode.",
        "en": "I'm sorry you're going through this. Let's find an option that works for you.",
    },
    "plan_ask_affordable": {
        "es": "¿Cuánto podrías pagar y cada cuándo (cada semana, cada quincena o cada mes)?",
        "en": "How much could you pay, and how often (every week, every two weeks or every month)?",
    },
    "plan_menu_header": {
        "es": "Estas son las opciones para tu saldo de {balance}:",
        "en": "These are the options for your balance of {balance}:",
    },
    "plan_option_installments": {
        "es": "{n}) {count} pagos {frequency} de {installment} (el primero el {first})",
        "en": "{n}) {count} {frequency} payments of {installment} (the first on {first})",
    },
    "plan_option_uneven": {
        "es": "{n}) {count} pagos {frequency}: {installment} y el último de {last} (el primero el {first})",
        "en": "{n}) {count} {frequency} payments: {installment}, and a last one of {last} (the first on {first})",
    },
    "plan_option_lump_sum": {
        "es": "{n}) Un solo pago de {amount} a más tardar el {first} ({discount} de descuento)",
        "en": "{n}) A single payment of {amount} by {first} ({discount} off)",
    },
    "plan_menu_footer": {
        "es": "Responde con el número de la opción que prefieras.",
        "en": "Reply with the number of the option you prefer.",
    },
    "plan_choose_again": {
        "es": "Responde con el número de una de las opciones (1 a {count}).",
        "en": "Please reply with the number of one of the options (1 to {count}).",
    },
    "plan_confirm": {
        "es": "¿Confirmas la opción {n}: {summary}?",
        "en": "Do you confirm option {n}: {summary}?",
    },
    "plan_recorded": {
        "es": "¡Listo! Tu plan quedó registrado. Estas son tus fechas:",
        "en": "Done! Your plan is recorded. These are your dates:",
    },
    "schedule_line": {
        "es": "{n}. {date}: {amount}",
        "en": "{n}. {date}: {amount}",
    },
    "plan_nothing_fits": {
        "es": "Entiendo. Con ese monto no puedo armar un plan dentro de las reglas de {creditor}, así que pasé tu caso "
        "a una persona de nuestro equipo (folio {case}). Te contactará en horario de atención: {hours}.",
        "en": "I understand. With that amount I can't set up a plan within {creditor}'s rules, so I've passed your "
        "case to a person on our team (case {case}). They will contact you during business hours: {hours}.",
    },
    "plan_retry": {
        "es": "Sin problema. ¿Cuánto podrías pagar y cada cuándo?",
        "en": "No problem. How much could you pay, and how often?",
    },
    # --- payment claims -------------------------------------------------------------
    "claim_ask_details": {
        "es": "¡Gracias por avisar! Para ubicar tu pago, ¿me compartes la fecha, el monto y la referencia "
        "o una foto del comprobante?",
        "en": "Thanks for letting us know! To find your payment, could you share the date, the amount and the "
        "reference or a photo of the receipt?",
    },
    "claim_recorded": {
        "es": "¡Gracias! Registré tu pago para que {creditor} lo concilie{details}. Mientras se confirma, "
        "pausamos los recordatorios de esa cuenta.",
        "en": "Thank you! I've recorded your payment for {creditor} to reconcile{details}. While it's confirmed, "
        "we've paused reminders on that account.",
    },
    "claim_details": {
        "es": " ({details})",
        "en": " ({details})",
    },
    "receipt_attached": {
        "es": "Recibí tu comprobante, gracias.",
        "en": "I received your receipt, thank you.",
    },
    # --- disputes, complaints, agents --------------------------------------------------
    "dispute_recorded": {
        "es": "Entiendo. Registré tu aclaración con el folio {case} y detuvimos el cobro de esa cuenta mientras "
        "se revisa. Una persona de nuestro equipo te contactará ({hours}).",
        "en": "I understand. I've recorded your dispute as case {case} and stopped collection on that account while "
        "it's reviewed. A person on our team will contact you ({hours}).",
    },
    "complaint_recorded": {
        "es": "Lamento mucho la molestia. Registré tu queja con el folio {case} y una persona de nuestro equipo "
        "la atenderá ({hours}). También puedes acudir a: {complaints}.",
        "en": "I'm very sorry about this. I've recorded your complaint as case {case} and a person on our team "
        "will handle it ({hours}). You can also contact: {complaints}.",
    },
    "agent_handoff": {
        "es": "Claro, te comunico con una persona de nuestro equipo (folio {case}). Nuestro horario es {hours}; "
        "te responderán por este mismo chat.",
        "en": "Sure, I'm connecting you with a person on our team (case {case}). Our hours are {hours}; "
        "they will reply in this same chat.",
    },
    # --- wrong person and opt-out ------------------------------------------------------------
    "wrong_person": {
        "es": "Disculpa la molestia. Tomamos nota y no volveremos a escribir a este número.",
        "en": "Sorry for the trouble. We've noted it and won't write to this number again.",
    },
    "opt_out": {
        "es": "Listo, ya no te enviaremos mensajes por WhatsApp. Si cambias de opinión, escríbenos.",
        "en": "Done, we won't send you WhatsApp messages anymore. If you change your mind, write to us.",
    },
    # --- language ------------------------------------------------------------------------------
    "language_changed": {
        "es": "¡Claro! A partir de ahora te escribo en español.",
        "en": "Sure! From now on I'll write to you in English.",
    },
    # --- small talk and fallback ---------------------------------------------------------------
    "goodbye": {
        "es": "Gracias por tu tiempo. ¡Que tengas buen día!",
        "en": "Thank you for your time. Have a good day!",
    },
    "thank": {
        "es": "¡Con gusto! ¿Te ayudo con algo más?",
        "en": "You're welcome! Can I help you with anything else?",
    },
    "anything_else": {
        "es": "Perfecto. ¿Te ayudo con algo más?",
        "en": "Great. Can I help you with anything else?",
    },
    "deny_nothing_pending": {
        "es": "Está bien. Si necesitas algo, aquí estoy.",
        "en": "All right. If you need anything, I'm here.",
    },
    "rephrase": {
        "es": "Perdón, no te entendí. ¿Me lo puedes decir con otras palabras?",
        "en": "Sorry, I didn't get that. Could you say it in other words?",
    },
    "offer_agent": {
        "es": "Parece que no te estoy entendiendo bien. ¿Quieres que te comunique con una persona de nuestro equipo?",
        "en": "It seems I'm not understanding you well. Would you like me to connect you with a person on our team?",
    },
    "out_of_scope": {
        "es": "Perdón, solo puedo ayudarte con tu cuenta. ¿Me lo dices con otras palabras?",
        "en": "Sorry, I can only help with your account. Could you tell me in other words?",
    },
    "yes_no": {
        "es": "¿Me confirmas con un «sí» o un «no»?",
        "en": 'Could you confirm with a "yes" or a "no"?',
    },
    "voice_note": {
        "es": "Por ahora no puedo escuchar notas de voz. ¿Me lo puedes escribir?",
        "en": "I can't listen to voice notes yet. Could you type it for me?",
    },
    "media_received": {
        "es": "Recibí tu archivo, gracias. ¿En qué te puedo ayudar?",
        "en": "I received your file, thank you. How can I help you?",
    },
}


def placeholders(template: str) -> set[str]:
    """The `{names}` a template expects."""
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def say(key: str, lang: str, **values: object) -> str:
    """The message `key` in `lang` ("es" by default), filled with `values`."""
    variants = MESSAGES[key]
    return variants.get(lang, variants["es"]).format(**values)
