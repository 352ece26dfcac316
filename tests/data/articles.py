"""The labelled articles behind the test fixtures (written for this project; fictional news).

Each article: language, title, date (ISO, the publication date the page states), body
paragraphs (what extraction must keep) and the site furniture around it (what it must drop).
`make_fixtures.py` renders them as saved news pages, PDFs, a Word file and a feed.
"""

ARTICLES = [
    {
        "id": "fa_dam", "lang": "fa", "date": "2025-06-14",
        "title": "حجم آب سد کرج به کمترین میزان ده سال اخیر رسید",
        "body": [
            "حجم آب ذخیره‌شده در سد امیرکبیر کرج به کمترین میزان خود در ده سال گذشته رسیده است. مدیرعامل شرکت آب منطقه‌ای تهران روز شنبه اعلام کرد که تنها ۲۲ درصد از ظرفیت این سد پر است.",
            "به گفته او، بارش‌ها در سال آبی جاری نسبت به میانگین بلندمدت ۴۰ درصد کاهش داشته و مصرف آب در تهران باید دست‌کم ۱۵ درصد کم شود.",
            "کارشناسان هشدار داده‌اند که اگر روند کنونی ادامه یابد، تهران در تابستان با قطعی‌های برنامه‌ریزی‌شده آب روبه‌رو خواهد شد. شرکت آب و فاضلاب نیز از نصب کاهنده‌های فشار در ۳۰۰ هزار واحد مسکونی خبر داد.",
        ],
    },
    {
        "id": "fa_metro", "lang": "fa", "date": "2025-03-02",
        "title": "خط هفت متروی تهران تا ایستگاه میدان صنعت گسترش یافت",
        "body": [
            "شهردار تهران صبح امروز ایستگاه میدان صنعت را به‌عنوان آخرین ایستگاه خط هفت مترو افتتاح کرد. با این افتتاح طول خط هفت به ۲۷ کیلومتر رسید.",
            "مدیرعامل شرکت متروی تهران گفت فاصله حرکت قطارها در ساعات اوج از ۱۲ دقیقه به ۸ دقیقه کاهش می‌یابد و روزانه حدود ۹۰ هزار مسافر بیشتر جابه‌جا خواهند شد.",
            "ساخت این ایستگاه چهار سال طول کشید و هزینه آن از محل اوراق مشارکت شهرداری تأمین شده است.",
        ],
    },
    {
        "id": "fa_wheat", "lang": "fa", "date": "2024-07-21",
        "title": "خرید تضمینی گندم از مرز ۸ میلیون تن گذشت",
        "body": [
            "معاون وزیر جهاد کشاورزی اعلام کرد خرید تضمینی گندم در سال زراعی جاری از مرز هشت میلیون تن گذشته و استان خوزستان با یک میلیون و ۲۰۰ هزار تن در صدر استان‌ها قرار دارد.",
            "او افزود که ۸۵ درصد مطالبات کشاورزان پرداخت شده و باقی‌مانده تا پایان ماه آینده تسویه می‌شود.",
            "پیش‌بینی می‌شود با ادامه خرید در استان‌های شمالی، کل خرید امسال به ۹ میلیون تن برسد و نیاز به واردات گندم کاهش یابد.",
        ],
    },
    {
        "id": "fa_quake", "lang": "fa", "date": "2025-01-09",
        "title": "زمین‌لرزه ۵٫۲ ریشتری حوالی بندرعباس خسارت جانی نداشت",
        "body": [
            "زمین‌لرزه‌ای به بزرگی ۵٫۲ ریشتر بامداد پنجشنبه حوالی بندرعباس را لرزاند. مرکز لرزه‌نگاری کشور عمق این زمین‌لرزه را ۱۰ کیلومتر اعلام کرد.",
            "رئیس جمعیت هلال‌احمر استان هرمزگان گفت تیم‌های ارزیاب به روستاهای اطراف اعزام شدند و تاکنون گزارشی از خسارت جانی دریافت نشده است.",
            "چند ساختمان قدیمی در روستای تازیان دچار ترک‌خوردگی شده و ساکنان آن‌ها به‌طور موقت در چادرهای هلال‌احمر اسکان یافته‌اند.",
        ],
    },
    {
        "id": "ar_port", "lang": "ar", "date": "2025-05-18",
        "title": "ميناء العقبة يسجل رقما قياسيا في مناولة الحاويات",
        "body": [
            "أعلنت شركة تطوير العقبة أن ميناء الحاويات سجل خلال الشهر الماضي رقما قياسيا بمناولة ١٢٠ ألف حاوية، بزيادة ١٨ في المئة عن الشهر نفسه من العام الماضي.",
            "وقال المدير التنفيذي للشركة إن الزيادة تعود إلى تحويل عدد من خطوط الشحن مساراتها نحو الميناء، إضافة إلى تشغيل رافعتين جديدتين في الرصيف الجنوبي.",
            "وتوقعت الشركة أن يتجاوز حجم المناولة مليون حاوية مع نهاية العام الحالي، وهو هدف لم يتحقق منذ افتتاح الميناء.",
        ],
    },
    {
        "id": "ar_heat", "lang": "ar", "date": "2024-08-03",
        "title": "موجة حر تضرب العراق ودرجات الحرارة تقترب من ٥٠ درجة",
        "body": [
            "أعلنت هيئة الأنواء الجوية العراقية أن درجات الحرارة ستقترب من خمسين درجة مئوية في بغداد والبصرة خلال الأيام الثلاثة المقبلة.",
            "وقررت الحكومة تقليص الدوام الرسمي في الدوائر الحكومية إلى الساعة الثانية عشرة ظهرا، ودعت المواطنين إلى تجنب التعرض لأشعة الشمس.",
            "وتشهد محطات الكهرباء ضغطا كبيرا مع ارتفاع الطلب، إذ أكدت وزارة الكهرباء أن الإنتاج بلغ ٢٧ ألف ميغاواط للمرة الأولى.",
        ],
    },
    {
        "id": "ar_book", "lang": "ar", "date": "2025-02-11",
        "title": "معرض القاهرة للكتاب يستقبل أكثر من خمسة ملايين زائر",
        "body": [
            "أسدل الستار على الدورة السادسة والخمسين لمعرض القاهرة الدولي للكتاب بعد أن استقبل أكثر من خمسة ملايين زائر على مدى أربعة عشر يوما.",
            "وشاركت في الدورة ١٣٥٠ دار نشر من ٨٠ دولة، وكانت سلطنة عمان ضيف الشرف بجناح ضم مخطوطات نادرة ومعرضا للخط العربي.",
            "وقالت إدارة المعرض إن مبيعات الكتب الورقية ارتفعت هذا العام، وإن روايات الكتاب الشباب تصدرت قوائم الأكثر مبيعا.",
        ],
    },
    {
        "id": "ar_rail", "lang": "ar", "date": "2024-11-26",
        "title": "افتتاح خط القطار السريع بين الرياض والدمام بعد تحديثه",
        "body": [
            "دشنت الخطوط الحديدية السعودية الخط المحدث بين الرياض والدمام، لتنخفض مدة الرحلة من أربع ساعات ونصف إلى ثلاث ساعات وعشر دقائق.",
            "وأوضحت الشركة أن التحديث شمل استبدال ٤٠٠ كيلومتر من القضبان وتركيب أنظمة إشارات رقمية جديدة على طول المسار.",
            "ومن المقرر أن تسير عشر رحلات يومية في كل اتجاه، على أن ترتفع إلى أربع عشرة رحلة مع بداية العام المقبل.",
        ],
    },
    {
        "id": "en_bridge", "lang": "en", "date": "2025-04-07",
        "title": "Harbour bridge reopens after eight months of repairs",
        "body": [
            "The Harbour Bridge reopened to traffic on Monday morning after eight months of repairs to its steel deck and cables, the city's transport authority said.",
            "Engineers replaced 1,200 tonnes of corroded steel and installed sensors that report strain on the cables every ten seconds. The work cost 84 million dollars, 9 million more than planned.",
            "Buses will return to the bridge from next week, and a toll-free cycle lane on the eastern side opens in June.",
        ],
    },
    {
        "id": "en_vaccine", "lang": "en", "date": "2024-10-15",
        "title": "Health ministry starts winter flu campaign in schools",
        "body": [
            "The health ministry began its winter flu vaccination campaign in primary schools on Tuesday, aiming to reach 70 percent of children aged six to eleven by December.",
            "Nurses will visit 2,300 schools over seven weeks. Parents who did not return a consent form can book an appointment at a local clinic instead.",
            "Last winter, hospital admissions for flu among children fell by a third in districts where the school campaign was run, according to the ministry's annual report.",
        ],
    },
    {
        "id": "en_library", "lang": "en", "date": "2025-09-30",
        "title": "Old post office becomes the city's largest public library",
        "body": [
            "The old central post office reopened on Tuesday as the city's largest public library, with room for 400,000 books and 600 reading seats.",
            "The conversion kept the building's 1910 facade and clock tower. A new glass roof covers the former sorting hall, which now holds the children's section.",
            "The library will be open until 10 p.m. on weekdays, two hours later than any other branch, after a survey found that students wanted evening study space.",
        ],
    },
    {
        "id": "en_wind", "lang": "en", "date": "2024-12-12",
        "title": "Offshore wind farm delivers first power to the grid",
        "body": [
            "The North Bank offshore wind farm delivered its first electricity to the national grid on Thursday, two months ahead of schedule.",
            "Its 62 turbines will reach a combined capacity of 930 megawatts next spring, enough for about 800,000 homes. Each blade is 108 metres long.",
            "The operator said 450 people will work at the maintenance base in the port town of Eastmouth for the farm's 25-year life.",
        ],
    },
]

# short news items: a headline, a date and about 230 characters of body, under trafilatura's
# minimum extracted size (MIN_EXTRACTED_SIZE, 250 characters), where it sets its extraction
# aside for a cruder one of the whole page
SHORT_ARTICLES = [
    {
        "id": "fa_nightbus", "lang": "fa", "date": "2025-07-05",
        "title": "ساعت کار اتوبوس‌های شبانه تهران تا دو بامداد تمدید شد",
        "body": [
            "شرکت واحد اتوبوسرانی تهران اعلام کرد از شنبه آینده ساعت کار خطوط شبانه تا دو بامداد تمدید می‌شود.",
            "به گفته مدیرعامل این شرکت، ۱۲ خط شبانه با ۸۰ دستگاه اتوبوس در این طرح فعال هستند.",
            "این طرح تا پایان شهریور به‌صورت آزمایشی اجرا می‌شود.",
        ],
    },
    {
        "id": "ar_desal", "lang": "ar", "date": "2025-04-20",
        "title": "افتتاح محطة جديدة لتحلية المياه في العقبة",
        "body": [
            "افتتحت وزارة المياه صباح الأحد محطة جديدة لتحلية مياه البحر في مدينة العقبة بطاقة خمسين ألف متر مكعب يوميا.",
            "وقال الوزير إن المحطة ستغطي احتياجات نحو مئتي ألف نسمة.",
            "ومن المتوقع أن تبدأ المرحلة الثانية مطلع العام المقبل.",
        ],
    },
]

# site furniture per language: navigation, related links, comment forms, footers, widgets
FURNITURE = {
    "fa": {
        "menu": ["صفحه اصلی", "سیاسی", "اقتصادی", "اجتماعی", "ورزشی", "فرهنگی", "بین‌الملل"],
        "related_title": "اخبار مرتبط",
        "related": ["افزایش قیمت بلیت اتوبوس‌های شهری از اول تیر", "بارش برف در ارتفاعات البرز ادامه دارد",
                    "جزئیات طرح جدید مالیات بر خانه‌های خالی اعلام شد"],
        "most_read_title": "پربازدیدترین‌ها",
        "most_read": ["نتایج کنکور سراسری هفته آینده اعلام می‌شود", "قیمت طلا در بازار امروز کاهش یافت"],
        "comments_title": "نظر شما",
        "comment_labels": ["نام", "ایمیل", "ارسال نظر"],
        "comments": ["ممنون از گزارش خوبتان، امیدوارم مسئولان پیگیری کنند."],
        "share": "اشتراک‌گذاری در شبکه‌های اجتماعی",
        "footer": "تمامی حقوق این سایت برای خبرگزاری نمونه محفوظ است",
        "newsletter": "برای دریافت خبرنامه روزانه ایمیل خود را وارد کنید",
        "read_also": "بیشتر بخوانید:",
        "published": "تاریخ انتشار:",
        "ad": "تبلیغات: خرید اقساطی لوازم خانگی با ۲۰ درصد تخفیف ویژه تابستان",
    },
    "ar": {
        "menu": ["الرئيسية", "سياسة", "اقتصاد", "رياضة", "ثقافة", "منوعات"],
        "related_title": "أخبار ذات صلة",
        "related": ["ارتفاع أسعار الذهب في الأسواق المحلية", "انطلاق بطولة كأس الخليج الشهر المقبل",
                    "الحكومة تعلن خطة جديدة لدعم المشاريع الصغيرة"],
        "most_read_title": "الأكثر قراءة",
        "most_read": ["نتائج الثانوية العامة تعلن الأسبوع المقبل", "تعرف على حالة الطقس ليوم غد"],
        "comments_title": "أضف تعليقك",
        "comment_labels": ["الاسم", "البريد الإلكتروني", "إرسال التعليق"],
        "comments": ["شكرا على هذا التقرير المفيد، نتمنى المزيد من المتابعة."],
        "share": "شارك الخبر على مواقع التواصل",
        "footer": "جميع الحقوق محفوظة لموقع الأخبار النموذجي",
        "newsletter": "اشترك في النشرة البريدية اليومية",
        "read_also": "اقرأ أيضا:",
        "published": "تاريخ النشر:",
        "ad": "إعلان: احجز رحلتك الصيفية الآن واحصل على خصم ٣٠ بالمئة",
    },
    "en": {
        "menu": ["Home", "World", "Business", "Sport", "Culture", "Opinion"],
        "related_title": "Related stories",
        "related": ["Council approves new parking charges for the city centre", "Storm warning issued for the coast this weekend",
                    "Local team wins cup final after penalty shoot-out"],
        "most_read_title": "Most read",
        "most_read": ["House prices fall for the third month in a row", "Ten walks to try before the summer ends"],
        "comments_title": "Leave a comment",
        "comment_labels": ["Your name", "Email address", "Post comment"],
        "comments": ["Great news, it was about time they finished the work."],
        "share": "Share this article on social media",
        "footer": "Copyright 2019 The Example Herald. All rights reserved.",
        "newsletter": "Sign up for our daily newsletter",
        "read_also": "Read more:",
        "published": "Published:",
        "ad": "Advertisement: switch your broadband today and get three months free",
    },
}
