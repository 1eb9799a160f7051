//! 页面的中文文字 (the page's words in Simplified Chinese): the same rows as en.rs, in the
//! same order. Names stay as they are: echo, upper, chat, lossy, nobody, `nc -u`,
//! ECONNREFUSED, EMSGSIZE.

use super::Words;

pub const WORDS: Words = Words {
    code: "zh",
    lessons: [
        (
            "no-listener",
            "无人监听",
            "UDP 没有连接：套接字可以向无人监听的端口发送。看数据报发出后消失，标为 ∅ VANISHED；发送方什么也不知道。",
        ),
        (
            "empty",
            "空数据报",
            "没有字节的数据报仍然是数据报。找到 0 字节的发送和它 0 字节的回显：两条箭头都是真实的流量。",
        ),
        (
            "boundaries",
            "消息边界",
            "UDP 保留消息边界。两次发送 \"first\" 和 \"second\" 作为两个数据报到达，绝不会像 TCP 字节流那样合并。",
        ),
        (
            "loss-retry",
            "丢包与重试",
            "lossy 服务器现在丢弃一切。看客户端在各次尝试之间等待 100、200、400、800 毫秒（每次重试都标出等待时间），然后放弃。",
        ),
        (
            "late-duplicate",
            "迟到与重复的回复",
            "每个回答被延迟 300 毫秒，回复在客户端放弃等待之后才到：迟到 (LATE)；有一个回复来了两次：重复 (DUP)。有请求编号 (#n) 时，每个回复都指明它回答哪次尝试；第二个套接字没有编号，把迟到的回复当成了另一次尝试的回答。",
        ),
        (
            "connected-refused",
            "已连接与未连接",
            "两个套接字都发往 nobody。只有已连接的套接字收到 ECONNREFUSED；未连接的只有沉默。陌生人的数据报只到达未连接的套接字：已连接的套接字丢弃不是来自其对端的数据。",
        ),
        (
            "heartbeat-eviction",
            "心跳与驱逐",
            "chat 会忘记沉默 3 秒的客户端。\"alive\" 每秒发送一次心跳，一直留着；\"quiet\" 只说一句话，然后被驱逐：在聊天存活面板里看它的倒计时。之后 alive 也停止心跳。",
        ),
        (
            "truncation",
            "截断",
            "这个套接字一次最多读 1,024 字节，如同 recvfrom(1024)。发出 2,000 字节，回显也是完整的，但读取只保留 1,024 字节：其余的丢失了，UDP 不会告诉你。",
        ),
        (
            "reordering",
            "乱序",
            "通往 echo 的链路把每个数据报扣住，直到下一个通过。按顺序发送 1、2、3、4；找出标为乱序的到达。",
        ),
        (
            "size-limit",
            "大小上限",
            "在 IPv4 上，一个 UDP 数据报最多携带 65,507 字节；65,508 字节在发出之前就被 UDP 拒绝 (EMSGSIZE)。在 1,500 字节的 MTU 上，一个大数据报分成 45 个分片：丢一个分片，整个数据报就丢了。",
        ),
        (
            "many-clients",
            "众多客户端",
            "一个服务器，100 个客户端：人群 \"class\" 每秒发送 hello，upper 逐一回答。人群画成一条泳道，并附计数。",
        ),
        (
            "outside-clients",
            "外部客户端",
            "任何人都可以向这些服务器发送：没有连接，没有握手。在终端里运行下面的命令并输入一行：它立刻出现在这里。",
        ),
    ],
    page: &[
        (
            "intro",
            "五个服务器在等待。echo 原样送回收到的内容。upper 把它转成大写送回。chat 把每条消息转给所有已注册的人，并忘记沉默的客户端。lossy 按你的设置丢弃或延迟回答。nobody 是一个无人监听的端口。从第 1 课开始，或者手动打开一个套接字。",
        ),
        ("lessons", "课程"),
        ("replay", "重放"),
        ("outside-run", "在终端里运行："),
        ("outside-type", "然后输入："),
        ("lang", "English"),
        ("lang-title", "Switch to English"),
    ],
};
