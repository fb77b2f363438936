try{let c=document.querySelector("[data-refract-beacon]").dataset,m=JSON.parse(c.metrics),r=window.refract=window.refract||{},q=[],a,d=0,i,
s=(t,e=Date.now())=>{a&&e>a&&q.push({t:"engage",ms:e-a,ts:e});a=!document.hidden&&e;q[0]&&fetch(c.collect,{method:"POST",body:JSON.stringify({v:1,u:location.pathname,e:q.splice(0)}),headers:{"Content-Type":"application/json"},keepalive:1}).catch(y)},
y=()=>{for(;d<4&&(scrollY+innerHeight+1)*4>(d+1)*document.body.scrollHeight;)p({t:"scroll",d:++d*25})},
w=(t,e=3)=>(e&&t.parentNode!=document.body?w(t.parentNode,e-1)+">":"")+t.localName+(t.id?"#"+t.id:[,...t.classList].slice(0,3).join(".")),
h={click:(t,e,x)=>{if(t=t.target.closest("a,button,[type=submit],[type=button],[role=button]")){e=t.host&&t.origin+t.pathname;p({t:"click",s:w(t).slice(-256),h:e,m:k(m.click,t)});e&&t.host!=location.host&&p({t:"outbound",h:e});(x=/\.(pdf|(doc|xls|ppt)x?|csv|zip|gz|dmg|exe|pkg|key|odt|txt)$/i.exec(e))&&p({t:"download",h:e,x:x[1].toLowerCase()})}},
submit:(t,e=t.target,n=new Set,o,x)=>{for(t of e.elements)(i=t.name.slice(0,64))&&n.add(i),"emailDomain"in c&&/email/i.test(t.type+i)&&(x=/@(([a-z\d-]+\.)+[a-z]{2,})$/i.exec(t.value))&&(o=x[1].toLowerCase());p({t:"form",id:e.getAttribute("id")||"",a:e.getAttribute("action")||"",f:[...n].slice(0,64),m:k(m.form,e),dom:o},1)},
visibilitychange:s,pagehide:()=>{s();a=0},scroll:y,load:y},
u=t=>{try{q[0]&&s();p({t:"track",n:t[0],p:t[1]},1)}catch{}},
p=(t,e)=>{t.ts=Date.now();(q.push(t)>19||e)&&s()},
k=(t,e,o=[])=>{for(i in t)try{e.closest(t[i])&&o.push(i)}catch{}return o}
for(i in h)addEventListener(i,t=>{try{h[t.type](t)}catch{}},!0)
r.track=(...t)=>u(t)
s();(r.q||[]).map(u)
r.q={push:u}}catch{}
