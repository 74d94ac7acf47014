from imgcap_desktop.cli import main

raise SystemExit(main())
